// Package sampler turns an experiment spec into random crop requests: it
// parses the spec (YAML or JSON, strictly), binds every source to its Zarr
// array and coordinates, finds the t0s at which every source has its whole
// time window (NWP: the latest run issued in time) and the locations where
// every crop fits, and generates each epoch's samples lazily and
// deterministically: a seeded Feistel permutation of the epoch's positions
// and a counter-based RNG keyed by (seed, split, epoch, item), so that any
// shard of any epoch can be generated independently. Locations are drawn in
// OSGB and mapped into each source's grid (OSGB, WGS84 lat/lon or
// geostationary; 1-D or 2-D coordinates) by proj.go and grid.go.
package sampler
