package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// MaxBodyBytes bounds every request body; larger bodies are refused with 413.
const MaxBodyBytes = 64 << 10

// readFields decodes a request body that must be exactly one JSON object whose members are all strings named in
// fields. It is stricter than encoding/json on purpose, because another parser in front of us (a WAF, a proxy
// that logs usernames) could read the same bytes differently:
//   - duplicate members are refused (encoding/json keeps the last one);
//   - member names match exactly (encoding/json also accepts "USERNAME" for "username");
//   - unknown members, trailing data after the object, and invalid UTF-8 (which encoding/json silently replaces
//     with U+FFFD, changing a password) are refused.
//
// A missing member leaves its string empty; JSON null counts as missing. Callers check required members.
func readFields(w http.ResponseWriter, r *http.Request, fields map[string]*string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge()
		}
		return invalidRequest("could not read the request body")
	}
	if err := decodeFields(body, fields); err != nil {
		return invalidRequest("malformed request body: " + err.Error())
	}
	return nil
}

// decodeFields is readFields after the body is read. Its error messages are safe to show the client: they name
// members and JSON syntax problems, never values.
func decodeFields(body []byte, fields map[string]*string) error {
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil {
		return errors.New("want a JSON object")
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("invalid JSON")
		}
		name, _ := tok.(string) // inside an object the decoder only yields member names here
		dst, known := fields[name]
		switch {
		case !known:
			return fmt.Errorf("unknown member %.64q", name)
		case seen[name]:
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return errors.New("invalid JSON")
		}
		if string(raw) == "null" {
			continue
		}
		if len(raw) == 0 || raw[0] != '"' {
			return fmt.Errorf("member %q must be a string", name)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("member %q must be a string", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// writeJSON writes v with status. Every issuer response may carry a token or personal data, so none is cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // our own types always marshal; fail loudly in tests rather than send half a body
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal_error","message":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
