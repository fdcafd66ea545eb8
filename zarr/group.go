package zarr

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Group is a Zarr group and everything below it.
type Group struct {
	Store Store
	// Path is the group's store-relative path ("" for the root).
	Path       string
	ZarrFormat int
	Attrs      map[string]any
	// Arrays and Groups hold the direct children by name.
	Arrays map[string]*Array
	Groups map[string]*Group
}

// Array returns the array at path relative to the group ("t", "sub/t").
func (g *Group) Array(path string) (*Array, error) {
	path = strings.Trim(path, "/")
	parts := strings.Split(path, "/")
	cur := g
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur.Groups[p]
		if !ok {
			return nil, fmt.Errorf("%s group %q: no group %q", g.Store, "/"+g.Path, p)
		}
		cur = next
	}
	a, ok := cur.Arrays[parts[len(parts)-1]]
	if !ok {
		return nil, fmt.Errorf("%s group %q: no array %q", g.Store, "/"+g.Path, path)
	}
	return a, nil
}

// ArrayNames returns the paths of every array below the group, sorted.
func (g *Group) ArrayNames() []string {
	var names []string
	var walk func(prefix string, g *Group)
	walk = func(prefix string, g *Group) {
		for n := range g.Arrays {
			names = append(names, prefix+n)
		}
		for n, sub := range g.Groups {
			walk(prefix+n+"/", sub)
		}
	}
	walk("", g)
	sort.Strings(names)
	return names
}

// OpenGroup opens the group at path and everything below it, from the
// consolidated metadata when there is any (v2 .zmetadata, v3 inline
// consolidated_metadata), else by listing the store.
func OpenGroup(ctx context.Context, s Store, groupPath string) (*Group, error) {
	p := cleanPath(groupPath)
	docs, err := readKeys(ctx, s, joinKey(p, "zarr.json"), joinKey(p, ".zmetadata"), joinKey(p, ".zgroup"), joinKey(p, ".zattrs"))
	if err != nil {
		return nil, err
	}
	g := &Group{Store: s, Path: p, Arrays: map[string]*Array{}, Groups: map[string]*Group{}, Attrs: map[string]any{}}
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("%s group %q: %w", s, "/"+p, fmt.Errorf(format, args...))
	}
	switch {
	case docs[0] != nil:
		g.ZarrFormat = 3
		var m v3Meta
		if err := unmarshalJSON(docs[0], &m); err != nil {
			return nil, errorf("zarr.json: %w", err)
		}
		if m.NodeType != "group" {
			return nil, errorf("zarr.json: node_type %q, not a group", m.NodeType)
		}
		if m.Attributes != nil {
			g.Attrs = m.Attributes
		}
		if m.ConsolidatedMetadata != nil && m.ConsolidatedMetadata.Metadata != nil {
			for rel, doc := range m.ConsolidatedMetadata.Metadata {
				var node struct {
					NodeType   string         `json:"node_type"`
					Attributes map[string]any `json:"attributes"`
				}
				if err := unmarshalJSON(doc, &node); err != nil {
					return nil, errorf("consolidated_metadata %q: %w", rel, err)
				}
				if node.NodeType == "array" {
					a, err := arrayFromV3(s, joinKey(p, cleanPath(rel)), doc)
					if err != nil {
						return nil, err
					}
					g.place(cleanPath(rel), a, nil)
				} else {
					g.place(cleanPath(rel), nil, node.Attributes)
				}
			}
			return g, nil
		}
		return g, g.walk(ctx)
	case docs[1] != nil:
		g.ZarrFormat = 2
		var cm struct {
			Metadata map[string]json.RawMessage `json:"metadata"`
		}
		if err := unmarshalJSON(docs[1], &cm); err != nil {
			return nil, errorf(".zmetadata: %w", err)
		}
		if attrs, ok := cm.Metadata[".zattrs"]; ok {
			if err := unmarshalJSON(attrs, &g.Attrs); err != nil {
				return nil, errorf(".zmetadata .zattrs: %w", err)
			}
		}
		for key, doc := range cm.Metadata {
			dir, base := path.Split(key)
			dir = cleanPath(dir)
			switch base {
			case ".zarray":
				a, err := arrayFromV2(s, joinKey(p, dir), doc, cm.Metadata[joinKey(dir, ".zattrs")])
				if err != nil {
					return nil, err
				}
				g.place(dir, a, nil)
			case ".zgroup":
				if dir == "" {
					continue
				}
				var attrs map[string]any
				if raw, ok := cm.Metadata[joinKey(dir, ".zattrs")]; ok {
					if err := unmarshalJSON(raw, &attrs); err != nil {
						return nil, errorf(".zmetadata %s/.zattrs: %w", dir, err)
					}
				}
				g.place(dir, nil, attrs)
			}
		}
		if g.Attrs == nil {
			g.Attrs = map[string]any{}
		}
		return g, nil
	case docs[2] != nil:
		g.ZarrFormat = 2
		if docs[3] != nil {
			if err := unmarshalJSON(docs[3], &g.Attrs); err != nil {
				return nil, errorf(".zattrs: %w", err)
			}
		}
		return g, g.walk(ctx)
	}
	return nil, errorf("no group metadata (zarr.json, .zmetadata or .zgroup): %w", fs.ErrNotExist)
}

// place puts an array (a non-nil) or a group (with attrs) at rel below g,
// creating the groups in between.
func (g *Group) place(rel string, a *Array, attrs map[string]any) {
	if rel == "" {
		if a == nil && attrs != nil {
			g.Attrs = attrs
		}
		return
	}
	parts := strings.Split(rel, "/")
	cur := g
	for i, part := range parts[:len(parts)-1] {
		next, ok := cur.Groups[part]
		if !ok {
			next = &Group{Store: g.Store, Path: joinKey(g.Path, strings.Join(parts[:i+1], "/")), ZarrFormat: g.ZarrFormat,
				Arrays: map[string]*Array{}, Groups: map[string]*Group{}, Attrs: map[string]any{}}
			cur.Groups[part] = next
		}
		cur = next
	}
	last := parts[len(parts)-1]
	if a != nil {
		cur.Arrays[last] = a
		return
	}
	sub, ok := cur.Groups[last]
	if !ok {
		sub = &Group{Store: g.Store, Path: joinKey(g.Path, rel), ZarrFormat: g.ZarrFormat,
			Arrays: map[string]*Array{}, Groups: map[string]*Group{}}
		cur.Groups[last] = sub
	}
	sub.Attrs = attrs
	if sub.Attrs == nil {
		sub.Attrs = map[string]any{}
	}
}

// walk finds the nodes below g by listing the store.
func (g *Group) walk(ctx context.Context) error {
	keys, err := g.Store.List(ctx, prefixOf(g.Path))
	if err != nil {
		return fmt.Errorf("%s group %q: listing: %w", g.Store, "/"+g.Path, err)
	}
	prefix := prefixOf(g.Path)
	for _, k := range keys {
		rel := strings.TrimPrefix(k, prefix)
		dir, base := path.Split(rel)
		dir = cleanPath(dir)
		if dir == "" {
			continue
		}
		switch {
		case base == ".zarray" || (base == "zarr.json" && g.ZarrFormat == 3):
			docs, err := readKeys(ctx, g.Store, k, joinKey(joinKey(g.Path, dir), ".zattrs"))
			if err != nil {
				return err
			}
			if base == ".zarray" {
				a, err := arrayFromV2(g.Store, joinKey(g.Path, dir), docs[0], docs[1])
				if err != nil {
					return err
				}
				g.place(dir, a, nil)
				continue
			}
			var node struct {
				NodeType   string         `json:"node_type"`
				Attributes map[string]any `json:"attributes"`
			}
			if err := unmarshalJSON(docs[0], &node); err != nil {
				return fmt.Errorf("%s: %q: %w", g.Store, k, err)
			}
			if node.NodeType == "array" {
				a, err := arrayFromV3(g.Store, joinKey(g.Path, dir), docs[0])
				if err != nil {
					return err
				}
				g.place(dir, a, nil)
			} else {
				g.place(dir, nil, node.Attributes)
			}
		case base == ".zgroup":
			docs, err := readKeys(ctx, g.Store, joinKey(joinKey(g.Path, dir), ".zattrs"))
			if err != nil {
				return err
			}
			var attrs map[string]any
			if docs[0] != nil {
				if err := unmarshalJSON(docs[0], &attrs); err != nil {
					return fmt.Errorf("%s: %s/.zattrs: %w", g.Store, dir, err)
				}
			}
			g.place(dir, nil, attrs)
		}
	}
	return nil
}
