package extauthz

import (
	"sync"
	"unicode/utf8"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// request is what a decision reads of a CheckRequest: attributes.request.http's id, method, path, host, scheme,
// headers and header_map. The gRPC service decodes it straight from the wire (decode) instead of building the
// CheckRequest message: the message has ~20 header map entries, peers, addresses and a timestamp, ~60 allocations
// that cost more CPU than deciding, and Gatehouse reads six of its fields. Check (the Go API) fills it from a
// message (fill). FuzzDecodeRequest holds the two to the same result.
type request struct {
	http      bool // attributes.request.http was present
	malformed bool // the bytes are not a CheckRequest: the decision is 400
	id        string
	method    string
	path      string
	host      string
	scheme    string
	// headers is the headers map in wire order. A protobuf map keeps the last of duplicate keys, so lookups
	// scan from the end.
	headers []header
	// headerMap is header_map (Envoy's encode_raw_headers): every header line, with raw_value preferred to value
	// as the message's users read it. When it has entries, it is used instead of headers.
	headerMap []header
	// headersArr backs headers, so a typical request needs no allocation beyond its bytes.
	headersArr [32]header
}

type header struct{ name, value string }

// Field numbers of envoy.service.auth.v3.CheckRequest and the messages inside it that a decision reads.
const (
	fieldCheckAttributes  = 1  // CheckRequest.attributes
	fieldAttrsRequest     = 4  // AttributeContext.request
	fieldRequestHTTP      = 2  // AttributeContext.Request.http
	fieldHTTPID           = 1  // HttpRequest.id
	fieldHTTPMethod       = 2  // HttpRequest.method
	fieldHTTPHeaders      = 3  // HttpRequest.headers (map<string, string>)
	fieldHTTPPath         = 4  // HttpRequest.path
	fieldHTTPHost         = 5  // HttpRequest.host
	fieldHTTPScheme       = 6  // HttpRequest.scheme
	fieldHTTPHeaderMap    = 13 // HttpRequest.header_map
	fieldHeaderMapHeaders = 1  // HeaderMap.headers
	fieldMapKey           = 1  // map entry key; HeaderValue.key
	fieldMapValue         = 2  // map entry value; HeaderValue.value
	fieldHeaderRawValue   = 3  // HeaderValue.raw_value
)

var requestPool = sync.Pool{New: func() any {
	r := new(request)
	r.headers = r.headersArr[:0]
	return r
}}

func getRequest() *request { return requestPool.Get().(*request) }

// putRequest returns r to the pool. The strings it held stay valid: they point into the bytes decode was given,
// which are never written again and live as long as anything refers to them.
func putRequest(r *request) {
	r.reset()
	requestPool.Put(r)
}

// reset empties r, keeping its arrays, and drops its references to the bytes it was decoded from. It runs twice
// per request (decode, putRequest), so it clears only the entries in use: headers fill headersArr from the
// front, and all of it once they outgrow it.
func (r *request) reset() {
	clear(r.headersArr[:min(len(r.headers), len(r.headersArr))])
	clear(r.headerMap)
	r.http, r.malformed = false, false
	r.id, r.method, r.path, r.host, r.scheme = "", "", "", "", ""
	r.headers, r.headerMap = r.headersArr[:0], r.headerMap[:0]
}

// decode fills r from the protobuf encoding of a CheckRequest, with protobuf's semantics for the fields it reads:
// a message field seen twice is merged, the last of a repeated scalar wins, a field of the wrong wire type is an
// unknown field, strings must be UTF-8. Fields it does not read are skipped, so malformed content there is
// not noticed (proto.Unmarshal would refuse it); a decision never depends on it. b must not be modified later:
// r's strings point into it.
func (r *request) decode(b []byte) {
	r.reset()
	if !r.decodeMessage(b, msgCheck) {
		r.reset()
		r.malformed = true
	}
}

// Message kinds for decodeMessage.
const (
	msgCheck = iota
	msgAttributes
	msgRequest
	msgHTTP
	msgHeaderMap
)

// decodeMessage walks one message of the given kind; it reports false for bytes that are not protobuf.
func (r *request) decodeMessage(b []byte, kind int) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
			continue // none of the fields read is of another wire type: unknown
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		ok := true
		switch kind {
		case msgCheck:
			if num == fieldCheckAttributes {
				ok = r.decodeMessage(v, msgAttributes)
			}
		case msgAttributes:
			if num == fieldAttrsRequest {
				ok = r.decodeMessage(v, msgRequest)
			}
		case msgRequest:
			if num == fieldRequestHTTP {
				r.http = true
				ok = r.decodeMessage(v, msgHTTP)
			}
		case msgHTTP:
			ok = r.decodeHTTPField(num, v)
		case msgHeaderMap:
			if num == fieldHeaderMapHeaders {
				var h header
				if h, ok = decodePair(v, true); ok {
					r.headerMap = append(r.headerMap, h)
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *request) decodeHTTPField(num protowire.Number, v []byte) bool {
	var dst *string
	switch num {
	case fieldHTTPID:
		dst = &r.id
	case fieldHTTPMethod:
		dst = &r.method
	case fieldHTTPPath:
		dst = &r.path
	case fieldHTTPHost:
		dst = &r.host
	case fieldHTTPScheme:
		dst = &r.scheme
	case fieldHTTPHeaders:
		h, ok := decodePair(v, false)
		if ok {
			r.headers = append(r.headers, h)
		}
		return ok
	case fieldHTTPHeaderMap:
		return r.decodeMessage(v, msgHeaderMap)
	default:
		return true
	}
	s, ok := utf8String(v)
	*dst = s
	return ok
}

// decodePair decodes a map<string, string> entry (withRaw false) or a config.core.v3.HeaderValue (withRaw true):
// fields 1 and 2 are the name and value ("" when missing); a HeaderValue's field 3, raw_value, replaces the value
// when it is not empty. In a map entry field 3 is unknown, so skipped.
func decodePair(b []byte, withRaw bool) (header, bool) {
	var h header
	var raw []byte
	for len(b) > 0 {
		num, typ, v, rest, ok := consumeField(b)
		if !ok {
			return h, false
		}
		b = rest
		if typ != protowire.BytesType {
			continue
		}
		switch {
		case num == fieldMapKey:
			h.name, ok = utf8String(v)
		case num == fieldMapValue:
			h.value, ok = utf8String(v)
		case num == fieldHeaderRawValue && withRaw:
			raw = v // bytes: not checked for UTF-8
		}
		if !ok {
			return h, false
		}
	}
	if len(raw) > 0 {
		h.value = unsafe.String(&raw[0], len(raw))
	}
	return h, true
}

// consumeField reads one field: its number, wire type, and for length-delimited fields the value.
func consumeField(b []byte) (num protowire.Number, typ protowire.Type, v, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, false
	}
	b = b[n:]
	if typ == protowire.BytesType {
		v, n = protowire.ConsumeBytes(b)
	} else {
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return 0, 0, nil, nil, false
	}
	return num, typ, v, b[n:], true
}

// utf8String views b as a string, refusing invalid UTF-8 as protobuf does for proto3 strings.
func utf8String(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return unsafe.String(&b[0], len(b)), true
}

// fill sets r, which must be empty, from a CheckRequest message.
func (r *request) fill(req *authv3.CheckRequest) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return
	}
	r.http = true
	r.id, r.method, r.path, r.host, r.scheme = h.GetId(), h.GetMethod(), h.GetPath(), h.GetHost(), h.GetScheme()
	for k, v := range h.GetHeaders() {
		r.headers = append(r.headers, header{k, v})
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		r.headerMap = append(r.headerMap, header{hv.GetKey(), v})
	}
}

// values appends every value of a header (name lower-case): from header_map when Envoy sends raw headers
// (encode_raw_headers), matching names case-insensitively, else the headers map's (where Envoy joined duplicates
// with ",", or "; " for cookie).
func (r *request) values(name string, buf []string) []string {
	if len(r.headerMap) > 0 {
		for _, h := range r.headerMap {
			if equalFoldASCII(h.name, name) {
				buf = append(buf, h.value)
			}
		}
		return buf
	}
	for i := len(r.headers) - 1; i >= 0; i-- {
		if r.headers[i].name == name {
			return append(buf, r.headers[i].value)
		}
	}
	return buf
}

// equalFoldASCII is strings.EqualFold for a lower-case ASCII name: header names are ASCII tokens, and a name
// with other bytes never equals one of ours.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
