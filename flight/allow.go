package flight

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/lsio-loader/lsio-loader/sampler"
)

// Roots are what a server's clients may make it read: local directories
// (or files), s3://bucket/prefix and http(s)://host/prefix. A nil *Roots
// allows everything the server's user can read, which suits a unix socket
// only its owner can connect to.
type Roots struct {
	dirs []string   // cleaned, symlinks resolved
	urls []*url.URL // scheme and host lower case, path without trailing "/"
}

// ParseRoots reads -allow values. Local roots are resolved (symlinks
// included) now, so that a spec naming a symlink into a root is allowed
// and one naming a symlink out of it is not.
func ParseRoots(values []string) (*Roots, error) {
	r := &Roots{}
	for _, v := range values {
		if strings.Contains(v, "://") && !strings.HasPrefix(strings.ToLower(v), "file://") {
			u, err := parseRootURL(v)
			if err != nil {
				return nil, fmt.Errorf("-allow %q: %w", v, err)
			}
			r.urls = append(r.urls, u)
			continue
		}
		// A root that does not exist yet is kept: it allows nothing else.
		p, err := localPath(v)
		if err != nil {
			return nil, fmt.Errorf("-allow %q: %w", v, err)
		}
		r.dirs = append(r.dirs, p)
	}
	return r, nil
}

func parseRootURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch u.Scheme {
	case "s3", "http", "https":
	default:
		return nil, fmt.Errorf("scheme %q: want a directory, s3://, http:// or https://", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no bucket or host")
	}
	if hasDotSegment(u.Path) {
		return nil, errors.New("a URL with . or .. segments is refused")
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u, nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// localPath is p (a path or file:// URL) absolute, cleaned, and with the
// symlinks of its longest existing prefix resolved: the file the OS would
// open, whether or not it exists yet.
func localPath(p string) (string, error) {
	if strings.HasPrefix(strings.ToLower(p), "file://") {
		u, err := url.Parse(p)
		if err != nil {
			return "", err
		}
		p = u.Path
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var missing []string
	for dir := abs; ; dir = filepath.Dir(dir) {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(append([]string{real}, missing...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			return "", err
		}
		missing = append([]string{filepath.Base(dir)}, missing...)
	}
}

// permissionError marks a request for something outside every root.
type permissionError struct{ err error }

func (e permissionError) Error() string { return e.err.Error() }
func (e permissionError) Unwrap() error { return e.err }

// Check refuses loc, named by the spec's field, when it lies outside every
// root. The error names the field and what the spec wrote, never whether
// the path exists.
func (r *Roots) Check(field, loc string) error {
	if r == nil || r.allows(loc) {
		return nil
	}
	return permissionError{fmt.Errorf("%s: %s is outside every root the server allows (loader serve -allow)", field, loc)}
}

func (r *Roots) allows(loc string) bool {
	if strings.Contains(loc, "://") && !strings.HasPrefix(strings.ToLower(loc), "file://") {
		u, err := url.Parse(loc)
		if err != nil || hasDotSegment(u.Path) {
			return false
		}
		scheme, host, p := strings.ToLower(u.Scheme), strings.ToLower(u.Host), strings.TrimSuffix(u.Path, "/")
		for _, root := range r.urls {
			if root.Scheme == scheme && root.Host == host && under(p, root.Path, "/") {
				return true
			}
		}
		return false
	}
	p, err := localPath(loc)
	if err != nil {
		return false
	}
	for _, root := range r.dirs {
		if under(p, root, string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// under says whether p is root or lies below it, by whole segments.
func under(p, root, sep string) bool {
	return root == "" || root == sep || p == root || strings.HasPrefix(p, root+sep)
}

// checkSpec refuses a spec naming a store or file outside the roots.
func (r *Roots) checkSpec(spec *sampler.Spec) error {
	if spec.Locations.Sites != "" {
		if err := r.Check("locations.sites", spec.Locations.Sites); err != nil {
			return err
		}
	}
	for name, src := range spec.Sources {
		if err := r.Check("sources."+name+".store", src.Store); err != nil {
			return err
		}
	}
	return nil
}
