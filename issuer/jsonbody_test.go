package issuer

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeFields(t *testing.T) {
	cases := []struct {
		name, body string
		ok         bool
		user, pw   string
	}{
		{"both", `{"username":"alice","password":"pw"}`, true, "alice", "pw"},
		{"whitespace", " \n{ \"password\" : \"pw\" ,\"username\":\"alice\"}\n ", true, "alice", "pw"},
		{"escapes kept exactly", `{"username":"al\u0069ce","password":" p\"w "}`, true, "alice", ` p"w `},
		{"missing member", `{"username":"alice"}`, true, "alice", ""},
		{"null is missing", `{"username":"alice","password":null}`, true, "alice", ""},
		{"empty object", `{}`, true, "", ""},
		{"empty body", ``, false, "", ""},
		{"not an object", `["alice","pw"]`, false, "", ""},
		{"string", `"alice"`, false, "", ""},
		{"duplicate member", `{"username":"mallory","password":"x","username":"alice"}`, false, "", ""},
		{"duplicate null then value", `{"password":null,"password":"x"}`, false, "", ""},
		{"case variant of a member", `{"Username":"alice","password":"x"}`, false, "", ""},
		{"case variant as duplicate", `{"username":"a","USERNAME":"b","password":"x"}`, false, "", ""},
		{"unknown member", `{"username":"alice","password":"x","role":"admin"}`, false, "", ""},
		{"number", `{"username":"alice","password":123}`, false, "", ""},
		{"object value", `{"username":{"$ne":""},"password":"x"}`, false, "", ""},
		{"bool value", `{"username":"alice","password":true}`, false, "", ""},
		{"trailing object", `{"username":"alice","password":"x"}{}`, false, "", ""},
		{"trailing garbage", `{"username":"alice","password":"x"} x`, false, "", ""},
		{"trailing comma", `{"username":"alice","password":"x",}`, false, "", ""},
		{"unterminated", `{"username":"alice"`, false, "", ""},
		{"invalid UTF-8", "{\"username\":\"alice\",\"password\":\"\xff\"}", false, "", ""},
		{"BOM", "\ufeff{}", false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var user, pw string
			err := decodeFields([]byte(c.body), map[string]*string{"username": &user, "password": &pw})
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && (user != c.user || pw != c.pw) {
				t.Errorf("got %q/%q, want %q/%q", user, pw, c.user, c.pw)
			}
			if err != nil && strings.Contains(err.Error(), "mallory") {
				t.Errorf("error echoes a value: %v", err)
			}
		})
	}
}

// FuzzDecodeFields: never panics, and whatever it accepts encoding/json reads the same way.
func FuzzDecodeFields(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{"username":"a","username":"b"}`, `{"x":1}`, `[]`, `{"username":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var user, pw string
		if err := decodeFields(body, map[string]*string{"username": &user, "password": &pw}); err != nil {
			return
		}
		var std struct {
			Username *string `json:"username"`
			Password *string `json:"password"`
		}
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("accepted %q that encoding/json refuses: %v", body, err)
		}
		deref := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if deref(std.Username) != user || deref(std.Password) != pw {
			t.Fatalf("%q: we read %q/%q, encoding/json %q/%q", body, user, pw, deref(std.Username), deref(std.Password))
		}
	})
}
