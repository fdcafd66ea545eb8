package zarr

import (
	"bytes"
	"encoding/json"
)

// sanitizeJSON quotes the bare NaN, Infinity and -Infinity literals that
// Python's json module writes (zarr-python 2 fill values and attributes),
// so that encoding/json accepts the document. Literals inside strings are
// left alone. The result aliases src when there is nothing to change.
func sanitizeJSON(src []byte) []byte {
	if !bytes.Contains(src, []byte("NaN")) && !bytes.Contains(src, []byte("Infinity")) {
		return src
	}
	out := make([]byte, 0, len(src)+16)
	inString, escaped := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case bytes.HasPrefix(src[i:], []byte("NaN")):
			out = append(out, `"NaN"`...)
			i += len("NaN") - 1
			continue
		case bytes.HasPrefix(src[i:], []byte("-Infinity")):
			out = append(out, `"-Infinity"`...)
			i += len("-Infinity") - 1
			continue
		case bytes.HasPrefix(src[i:], []byte("Infinity")):
			out = append(out, `"Infinity"`...)
			i += len("Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// unmarshalJSON decodes metadata that may hold bare NaN/Infinity literals.
func unmarshalJSON(data []byte, v any) error {
	return json.Unmarshal(sanitizeJSON(data), v)
}
