package flight

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Exposure is who can reach a server and what they may make it read.
type Exposure struct {
	// Allow bounds the stores and files specs may name; nil: anything the
	// server's user can read.
	Allow *Roots
	// TLS, when set, encrypts every connection.
	TLS *tls.Config
	// Token, when set, must come with every call as "authorization: Bearer <token>".
	Token []byte
}

// ExposureConfig is what `loader serve` is told on its command line.
type ExposureConfig struct {
	Listen          string
	Allow           []string
	TLSCert, TLSKey string
	TokenFile       string
}

// NewExposure checks that cfg is safe to serve and loads its files. A unix
// socket (owner-only) may go without -allow; a TCP listener may not; a
// listener off the loopback interface also needs TLS and a token.
func NewExposure(cfg ExposureConfig) (Exposure, error) {
	var e Exposure
	if len(cfg.Allow) > 0 {
		roots, err := ParseRoots(cfg.Allow)
		if err != nil {
			return e, err
		}
		e.Allow = roots
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return e, errors.New("-tls-cert and -tls-key: give both or neither")
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			// The error of LoadX509KeyPair names no file contents.
			return e, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		e.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.TokenFile != "" {
		token, err := readToken(cfg.TokenFile)
		if err != nil {
			return e, err
		}
		e.Token = token
	}
	host, isTCP := strings.CutPrefix(cfg.Listen, "tcp://")
	if !isTCP {
		return e, nil
	}
	if e.Allow == nil {
		return e, fmt.Errorf("-listen %s: a TCP server needs -allow ROOT (a directory, s3://bucket/prefix or https://host/prefix) for each store its clients may read", cfg.Listen)
	}
	if !loopback(host) && (e.TLS == nil || e.Token == nil) {
		return e, fmt.Errorf("-listen %s: off the loopback interface the server needs -tls-cert, -tls-key and -token-file", cfg.Listen)
	}
	return e, nil
}

// readToken reads a bearer token: the file's first line, at least 16
// bytes. The file should be readable by its owner only.
func readToken(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-token-file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	token := strings.TrimSpace(line)
	if len(token) < 16 {
		return nil, fmt.Errorf("-token-file %s: the token (its first line) must be at least 16 characters", path)
	}
	return []byte(token), nil
}

// loopback says whether host:port only listens on this machine.
func loopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverOptions are the gRPC options that enforce e, plus keepalive: the
// server drops clients that vanished, and lets clients ping it often
// enough to notice a frozen server.
func (e Exposure) serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if e.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(e.TLS)))
	}
	if e.Token != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(e.unaryAuth), grpc.ChainStreamInterceptor(e.streamAuth))
	}
	return opts
}

// authorize checks the call's bearer token in constant time.
func (e Exposure) authorize(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		token, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(token), e.Token) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong bearer token (the client's token= or LSIO_LOADER_TOKEN)")
}

func (e Exposure) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := e.authorize(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (e Exposure) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := e.authorize(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}
