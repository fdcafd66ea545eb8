package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBenchRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "subcommand gen"},
		{[]string{"run"}, "subcommand gen"},
		{[]string{"gen", "--size", "huge"}, "huge"},
		{[]string{"gen", "extra"}, "unexpected"},
	} {
		err := runBench(context.Background(), tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
