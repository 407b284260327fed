package portal

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/portal.css
var portalCSS []byte

// cssVersion busts caches when the stylesheet changes (it is served with a long max-age).
var cssVersion = func() string {
	sum := sha256.Sum256(portalCSS)
	return hex.EncodeToString(sum[:6])
}()

// pages are the parsed templates: layout.html plus one file per page, each defining "content".
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"timeUTC": func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
	"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"date":    func(t time.Time) string { return t.UTC().Format("2 January 2006") },
	"input":   input,
}

func loadPages() (*pages, error) {
	layout, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	ps := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		body, err := templateFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Option("missingkey=error").Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
		if _, err := t.New(name).Parse(string(body)); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		ps.byName[name] = t
	}
	return ps, nil
}

func (ps *pages) execute(w io.Writer, name string, v *view) error {
	t, ok := ps.byName[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	return t.ExecuteTemplate(w, "layout", v)
}

// site is what every page shows: the product, the configured title and logo, and the navigation.
// Links are paths (Prefix + "/sessions"), not absolute URLs, so the forms stay same-origin (form-action 'self')
// whatever name the portal is reached by.
type site struct {
	Title  string
	Logo   string // path of the logo, "" for none
	CSS    string
	Prefix string
}

// view is everything a page template reads. Fields a page does not use stay zero.
type view struct {
	Site  *site
	Title string // the page's h1 and <title>
	User  string // the signed-in username, "" when nobody is
	Nav   string // the current navigation entry: "account" or "sessions"
	Wide  bool   // a wider main column (lists)

	CSRF       string
	ReturnTo   string // a validated return URL, carried through the forms
	ReturnHost string // its host, to tell the person where they are going

	Alert     string            // the error summary sentence
	Problems  []problem         // field errors, in form order, listed in the error summary
	Notice    string            // a success sentence
	Fields    map[string]string // field id → error sentence
	Values    map[string]string // field values to show again (never a password or code)
	Autofocus string            // the field that takes focus: the first invalid one, else the first

	MFAToken    string
	MFA         mfaView
	Enrol       *enrolView
	BackupCodes []string
	Sessions    []sessionView
	Refresh     string // meta refresh target (the interstitial)
	Back        string
	BackLabel   string
}

// problem is one field error as the error summary lists it, linking to the field.
type problem struct {
	Field, Text string
}

// inputView is one labelled text input, rendered by the "input" template.
type inputView struct {
	ID, Label, Type, Autocomplete, Hint, Error, Value string
	DescribedBy                                       string // ids of the hint and the error text
	Autofocus, Numeric, NoCaps                        bool
}

// input builds an inputView for field id of v. flags: "numeric" (a numeric keyboard), "nocaps" (no
// autocapitalisation or spell check: usernames, codes).
func input(v *view, id, label, typ, autocomplete, hint, flags string) inputView {
	in := inputView{ID: id, Label: label, Type: typ, Autocomplete: autocomplete, Hint: hint,
		Error: v.Fields[id], Value: v.Values[id], Autofocus: v.Autofocus == id,
		Numeric: strings.Contains(flags, "numeric"), NoCaps: strings.Contains(flags, "nocaps")}
	var ids []string
	if hint != "" {
		ids = append(ids, id+"-hint")
	}
	if in.Error != "" {
		ids = append(ids, id+"-error")
	}
	in.DescribedBy = strings.Join(ids, " ")
	return in
}

type mfaView struct {
	Enabled         bool
	EnabledAt       time.Time
	BackupCodesLeft int
}

type enrolView struct {
	QR          template.URL // data:image/png;base64,...
	Secret      string       // grouped in fours for reading
	SecretPlain string       // as the app wants it typed
	Account     string
	Issuer      string
	URI         string // the otpauth URI, carried (signed) through the confirm form
	MAC         string
}

type sessionView struct {
	ID        string
	Device    string
	UserAgent string
	ClientIP  string
	Created   time.Time
	LastUsed  time.Time
	Current   bool
}

func (p *Portal) site() *site {
	s := &site{Title: p.cfg.Title, CSS: p.cssPath, Prefix: p.prefix}
	if p.cfg.Logo != nil {
		s.Logo = p.prefix + "/static/logo"
	}
	return s
}

func (p *Portal) view(r *http.Request, title string) *view {
	return &view{Site: p.site(), Title: title, Fields: map[string]string{}, Values: map[string]string{}}
}

// serveCSS serves the one stylesheet, cacheable for a day (its URL carries a content hash).
func serveCSS(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(portalCSS)
	return nil
}

func (p *Portal) serveLogo(w http.ResponseWriter, r *http.Request) error {
	if p.cfg.Logo == nil {
		return &pageError{status: http.StatusNotFound, message: "There is no page at this address."}
	}
	h := w.Header()
	h.Set("Content-Type", p.cfg.LogoType)
	h.Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(p.cfg.Logo)
	return nil
}
