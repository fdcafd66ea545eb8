package codecs

import (
	"errors"
	"fmt"
	"testing"
)

// bz2Hello is Python's bz2.compress(b"hello", 9).
const bz2Hello = "BZh91AY&SY\x191e=\x00\x00\x00\x81\x00\x02D\xa0\x00!\x9ah3M\x073\x8b\xb9\"\x9c(H\x0c\x98\xb2\x9e\x80"

func TestBz2Decode(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want string
	}{
		{"one stream", bz2Hello, "hello"},
		{"concatenated streams", bz2Hello + bz2Hello, "hellohello"},
		{"empty stream", "BZh9\x17rE8P\x90\x00\x00\x00\x00", ""},
	} {
		got, err := NewBz2().Decode(nil, []byte(tc.src), len(tc.want))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestBz2RejectsCorruptStreams(t *testing.T) {
	flip := func(i int) string {
		b := []byte(bz2Hello)
		b[i] ^= 0x10
		return string(b)
	}
	cases := map[string]string{
		"empty input":      "",
		"not bzip2":        "BZx9" + bz2Hello[4:],
		"bad level":        "BZh0" + bz2Hello[4:],
		"bad block magic":  flip(5),
		"bad block crc":    flip(11),
		"damaged data":     flip(30),
		"bad stream crc":   flip(len(bz2Hello) - 2),
		"trailing garbage": bz2Hello + "xyz",
	}
	for i := range len(bz2Hello) {
		cases[fmt.Sprintf("truncated to %d bytes", i)] = bz2Hello[:i]
	}
	for name, src := range cases {
		if _, err := NewBz2().Decode(nil, []byte(src), 5); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := NewBz2().Decode(nil, []byte(bz2Hello), -4); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decode beyond the limit: got %v, want ErrCorrupt", err)
	}
}
