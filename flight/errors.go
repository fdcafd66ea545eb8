package flight

import (
	"context"
	"errors"
	"io/fs"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// requestError marks an error in what the client sent (spec, envelope,
// ticket) rather than in the data or the server.
type requestError struct{ err error }

func (e requestError) Error() string { return e.err.Error() }
func (e requestError) Unwrap() error { return e.err }

// grpcError gives err the gRPC code a client can act on, keeping its
// message, which names what went wrong and where.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	var reqErr requestError
	var permErr permissionError
	switch {
	case errors.As(err, &permErr):
		code = codes.PermissionDenied
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, fs.ErrNotExist):
		code = codes.NotFound
	case errors.As(err, &reqErr):
		code = codes.InvalidArgument
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}
