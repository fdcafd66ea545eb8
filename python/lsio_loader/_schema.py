"""Column and metadata names of the loader's record batches.

flight/schema.go defines them; its test TestPythonClientNames checks that
these agree, so a rename on either side fails the tests."""

EPOCH_INDEX = "epoch_index"
T0 = "t0"
X = "x"
Y = "y"
LAT = "lat"
LON = "lon"
# Provenance columns every record batch has, in schema order.
PROVENANCE = (EPOCH_INDEX, T0, X, Y, LAT, LON)
# "<source>.isel": [start, stop) per own dim; "<source>.time": the time labels.
SUFFIX_ISEL = ".isel"
SUFFIX_TIME = ".time"
# Field metadata naming the dtype a column's Arrow type only carries the bits of.
META_DTYPE = b"lsio.dtype"
# Schema metadata: the sources (JSON) and the request the stream serves.
META_SOURCES = b"lsio.sources"
META_REQUEST = b"lsio.request"
