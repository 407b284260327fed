package extauthz

import (
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// responseCodec is the gRPC server's codec: protobuf, with CheckResponses encoded from what was encoded when they
// were rendered. A denial or public allow is sent as stored; an authenticated allow is the OK status, the caller's
// headers (encoded now) and the rule's metadata (stored). Encoding the metadata Struct, a protobuf map, used to
// cost more than deciding. Protobuf allows fields in any order and concatenated encodings, so the bytes decode to
// exactly the message Check returned (TestCodecMatchesProto). Anything else goes to the standard codec.
// Requests are decoded into a request, not a CheckRequest message (Unmarshal).
type responseCodec struct {
	s        *Server
	std      encoding.CodecV2
	okStatus []byte // field 1: the OK status
}

func newResponseCodec(s *Server) *responseCodec {
	st, _ := proto.Marshal(s.resp.okStatus)
	return &responseCodec{s: s, std: encoding.GetCodecV2(protocodec.Name),
		okStatus: protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), st)}
}

// Name is "proto": the codec serves the application/grpc+proto content type.
func (c *responseCodec) Name() string { return protocodec.Name }

// Unmarshal decodes a Check call's request into a request (wire.go); it never fails, since a request that is not
// protobuf is a 400 decision, not a gRPC error that Envoy would answer with its status_on_error. Materialize
// copies the bytes out of gRPC's pooled buffers, which are reused once Unmarshal returns; the request's strings
// point into the copy.
func (c *responseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*request); ok {
		r.decode(data.Materialize())
		return nil
	}
	return c.std.Unmarshal(data, v)
}

func (c *responseCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*authv3.CheckResponse)
	if !ok {
		return c.std.Marshal(v)
	}
	cp := c.s.policy.Load()
	cp.mu.RLock()
	enc, shared := cp.encoded[r]
	tail, template := cp.allowTail[r.DynamicMetadata]
	cp.mu.RUnlock()
	if shared {
		return mem.BufferSlice{mem.SliceBuffer(enc)}, nil // read-only: gRPC copies it into frames
	}
	okResp := r.GetOkResponse()
	if !template || okResp == nil || r.Status != c.s.resp.okStatus || len(r.ProtoReflect().GetUnknown()) != 0 {
		return c.std.Marshal(v) // rendered by an older policy version, or not by us
	}
	n := proto.Size(okResp)
	size := len(c.okStatus) + protowire.SizeTag(3) + protowire.SizeBytes(n) + len(tail)
	buf := make([]byte, 0, size)
	buf = append(buf, c.okStatus...)
	buf = protowire.AppendTag(buf, 3, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(n))
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, okResp)
	if err != nil {
		return nil, fmt.Errorf("extauthz: encode response: %w", err)
	}
	buf = append(buf, tail...)
	return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
}
