// Package zarr reads Zarr v2 and v3 hierarchies: group and array metadata
// (consolidated or not), data types and fill values, the codec chain
// including sharding, and batched reads of hyper-rectangular regions that
// fetch and decode each chunk once; cf.go adds the xarray/CF conventions
// (coordinates, scale/offset packing, CF time) the layers above need.
package zarr
