// Package policy compiles Gatehouse's route policy and answers, for a
// request, which route applies and whether a caller meets it.
//
// A policy file:
//
//	roles:
//	  guest: {permissions: [read:orders]}
//	  user:  {inherits: [guest], permissions: [read:users, write:orders]}
//	routes:                       # first match wins; no match: deny 403 no_route
//	  - name: auth
//	    match: {path_prefix: /auth}
//	    public: true
//	  - name: orders
//	    match: {methods: [GET, HEAD], path: "/orders/**", hosts: ["*.example.com"]}
//	    roles: [user]
//
// Schema rules (every violation is an error naming file and line; all are
// reported, not just the first; unknown keys are errors everywhere):
//
//   - Every route has a name (it identifies the route in explanations,
//     test cases and logs). Duplicate names are a lint warning.
//   - Every route has a match with exactly one of path and path_prefix, and
//     optionally methods and hosts; use `path_prefix: /` for everything.
//   - Every route has exactly one of `public: true`, `authenticated: true`,
//     `permissions: [...]` (all required) and `roles: [...]` (any one).
//   - path: literal segments, `{name}` for one non-empty segment, and an
//     optional final `/**` for zero or more further segments. path_prefix
//     is a literal path matched segment by segment: /auth matches /auth and
//     /auth/login, not /authz. Literal parts must be canonical paths (see
//     CanonicalPath) or they could never match.
//   - methods are upper-case method tokens, compared case-sensitively;
//     GET does not imply HEAD. hosts are DNS names, IP literals or
//     "*.name" (one or more labels before name, not name itself), compared
//     with the request authority without port or trailing dot, ignoring
//     ASCII case.
//   - inherits is transitive and must name defined roles without cycles; a
//     route's roles must be defined; a route's permissions must each be
//     granted by some role.
//
// Role semantics: a caller's effective roles are the roles it claims plus
// every role they inherit, transitively; its permissions are those of its
// effective roles. So `roles: [user]` admits an admin that inherits user.
// Roles the policy does not define grant nothing.
//
// Matching is done on a segment trie built from all routes, so the cost of
// Match depends on the path and on the routes sharing its segments, not on
// how many routes there are; the trie keeps first-match semantics by
// returning the lowest-indexed route that matches path, method and host.
// Rules sharing one pattern are checked in order, so thousands of routes
// that differ only by host or method would be scanned linearly.
package policy
