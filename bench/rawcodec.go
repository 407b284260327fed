package main

import (
	"context"
	"errors"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// rawCodec lets the load generator send pre-encoded requests and keep responses encoded, so that its own cost per
// request is the same whatever the server answers: decoding Gatehouse's larger responses (identity headers,
// metadata) would otherwise slow the client, not the server, and blur the comparison with the floor. Envoy, the
// real client, decodes in C++ on its own CPU.
type rawCodec struct{}

// Name is "proto" so that the content type stays application/grpc+proto, which servers accept.
func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

type rawMsg []byte

const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// encodeRequests marshals the requests once, up front.
func encodeRequests(reqs []*authv3.CheckRequest) ([]rawMsg, error) {
	out := make([]rawMsg, len(reqs))
	for i, r := range reqs {
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// rawCheck sends one encoded request and reports whether the answer allows it (field 3, ok_response, is set).
func rawCheck(ctx context.Context, conn *grpc.ClientConn, req *rawMsg) (bool, error) {
	var resp rawMsg
	if err := conn.Invoke(ctx, checkMethod, req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return false, err
	}
	return allowed(resp)
}

// allowed walks the top-level fields of an encoded CheckResponse.
func allowed(b []byte) (bool, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, errors.New("bad response")
		}
		b = b[n:]
		if num == 3 && typ == protowire.BytesType {
			return true, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false, errors.New("bad response")
		}
		b = b[n:]
	}
	return false, nil
}
