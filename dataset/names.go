package dataset

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// MissingArray is the error for an array name g does not hold: it lists
// the arrays g has and suggests the nearest name.
func MissingArray(g *zarr.Group, store, name string) error {
	names := g.ArrayNames()
	msg := fmt.Sprintf("no array %q in %s (arrays: %s)", name, store, strings.Join(names, ", "))
	if s := Nearest(names, strings.Trim(name, "/")); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return notFound(msg)
}

type notFound string

func (e notFound) Error() string { return string(e) }
func (e notFound) Unwrap() error { return fs.ErrNotExist }

// Nearest is the name closest to want in edit distance (ignoring case), if
// it is close enough to be a typo: at most a third of want's letters.
func Nearest(names []string, want string) string {
	best, bestD := "", len(want)/3+1
	for _, n := range names {
		if d := editDistance(strings.ToLower(n), strings.ToLower(want)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
