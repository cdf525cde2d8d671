package main

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ussync/ussync"

// listed is one package as `go list` sees it, its test files left aside.
type listed struct {
	path     string   // relative to the module: "node", "demo/site", "." for main
	internal []string // the module's packages it imports, relative
	external []string // the third-party packages it imports
}

// goList lists the module's packages and their imports.
func goList(t *testing.T) []listed {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var pkgs []listed
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, "|")
		p := listed{path: rel(path)}
		for _, imp := range strings.Fields(imports) {
			switch {
			case imp == module || strings.HasPrefix(imp, module+"/"):
				p.internal = append(p.internal, rel(imp))
			case strings.Contains(strings.Split(imp, "/")[0], "."):
				p.external = append(p.external, imp)
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) string {
	if path == module {
		return "."
	}
	return strings.TrimPrefix(path, module+"/")
}

// TestLayout_ThirdPartyBehindOneDoor checks the dependency rules of
// docs/architecture.md ("The arrows"): only gossip imports memberlist, only
// session imports badger, only main imports urfave/cli, session, crypto and
// client are leaves, and every package imports only the module's packages
// its place allows. A new package is added here, and to the doc's map, on
// purpose.
func TestLayout_ThirdPartyBehindOneDoor(t *testing.T) {
	owner := map[string]string{
		"github.com/hashicorp/memberlist": "gossip",
		"github.com/dgraph-io/badger/v4":  "session",
		"github.com/urfave/cli/v2":        ".",
	}
	allowed := map[string][]string{
		"session":              nil,
		"crypto":               nil,
		"client":               nil,
		"internal/eventually":  nil,
		"internal/testenv":     nil,
		"internal/browsertest": {"internal/eventually"},
		"gossip":               {"session"},
		"node":                 {"session", "crypto", "gossip", "client"},
		"node/nodetest":        {"node", "gossip", "session", "client", "internal/eventually"},
		"bench":                {"node", "node/nodetest", "gossip", "session"},
		"demo":                 {"node", "client", "crypto", "gossip", "demo/site"},
		"demo/site":            {"client"},
		"examples/go-site":     {"client"},
		"e2e":                  nil,
		"e2e/wordpress":        nil,
		".":                    {"node", "client", "crypto", "bench", "demo"},
	}
	for _, p := range goList(t) {
		for _, imp := range p.external {
			for lib, o := range owner {
				if (imp == lib || strings.HasPrefix(imp, lib+"/")) && p.path != o {
					t.Errorf("%s imports %s; only %s may", p.path, imp, o)
				}
			}
		}
		ok, known := allowed[p.path]
		if !known {
			t.Errorf("package %s has no place in the layout: add it to docs/architecture.md and to this test", p.path)
			continue
		}
		for _, imp := range p.internal {
			if !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s, against the one-way dependency rule", p.path, imp)
			}
		}
	}
}

// TestLayout_SiteBackends checks that a site's Go backend links neither
// Badger nor memberlist nor the node: client depends on the standard
// library alone, and the sites built on it (the demo's, the example) on
// client and the standard library.
func TestLayout_SiteBackends(t *testing.T) {
	for _, pkg := range []string{"client", "demo/site", "examples/go-site"} {
		out, err := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{end}}`, "./"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep != module+"/"+pkg && dep != module+"/client" {
				t.Errorf("%s links %s; a site's Go backend links client and the standard library only", pkg, dep)
			}
		}
	}
	// cli_admin.go calls the API as any site would: through client.
	f, err := parser.ParseFile(token.NewFileSet(), "cli_admin.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == module+"/node" {
			t.Error("cli_admin.go imports node; the administration commands are clients of the API")
		}
	}
}

// mapRow is one row of docs/architecture.md's package map.
type mapRow struct {
	internal, external []string
}

// readPackageMap parses the table of "## The package map".
func readPackageMap(t *testing.T) map[string]mapRow {
	t.Helper()
	f, err := os.Open(filepath.Join("docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]mapRow{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## The package map"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Fatalf("docs/architecture.md: a map row has %d cells, want 4: %s", len(cells), line)
		}
		pkg := strings.Trim(strings.Fields(cells[0])[0], "`")
		rows[pkg] = mapRow{internal: ticked(cells[2]), external: ticked(cells[3])}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal(`docs/architecture.md has no "## The package map" table`)
	}
	return rows
}

// ticked returns the `quoted` names of a cell ("—" for none).
func ticked(cell string) []string {
	var out []string
	for _, part := range strings.Split(cell, ",") {
		if name := strings.Trim(strings.TrimSpace(part), "`"); name != "" && name != "—" {
			out = append(out, name)
		}
	}
	return out
}

// TestArchitecture_PackageMap holds docs/architecture.md's package map equal
// to `go list`: every package is in it, with exactly the module's packages
// it imports, and third-party entries that each name (a prefix of) an import
// and together cover them all.
func TestArchitecture_PackageMap(t *testing.T) {
	doc := readPackageMap(t)
	for _, p := range goList(t) {
		row, ok := doc[p.path]
		if !ok {
			t.Errorf("docs/architecture.md: package %s is not in the map", p.path)
			continue
		}
		delete(doc, p.path)
		got, want := slices.Sorted(slices.Values(p.internal)), slices.Sorted(slices.Values(row.internal))
		if !slices.Equal(got, want) {
			t.Errorf("docs/architecture.md: %s imports %v of this module, the map says %v", p.path, got, want)
		}
		covers := func(entry, imp string) bool { return imp == entry || strings.HasPrefix(imp, entry+"/") }
		for _, imp := range p.external {
			if !slices.ContainsFunc(row.external, func(e string) bool { return covers(e, imp) }) {
				t.Errorf("docs/architecture.md: %s imports %s, which the map does not list", p.path, imp)
			}
		}
		for _, e := range row.external {
			if !slices.ContainsFunc(p.external, func(imp string) bool { return covers(e, imp) }) {
				t.Errorf("docs/architecture.md: the map says %s imports %s; it does not", p.path, e)
			}
		}
	}
	for pkg := range doc {
		t.Errorf("docs/architecture.md: the map lists %s, which go list does not", pkg)
	}
}

// TestLayout_Readable holds node/, its test harness, client/, bench/,
// demo/, examples/ and the command (the root package) to files
// of one concern: no file over 600 lines, no function over 80 lines unless
// its doc comment says why it is long "on purpose".
func TestLayout_Readable(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{"node", "node/nodetest", "client", "bench", "demo", "demo/site", "examples/go-site", "."} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if n := fset.File(f.Pos()).LineCount(); n > 600 {
				t.Errorf("%s has %d lines; split it by concern (at most 600)", name, n)
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				if n > 80 && (fd.Doc == nil || !strings.Contains(fd.Doc.Text(), "on purpose")) {
					t.Errorf("%s: %s is %d lines; split it, or say in its doc comment why it is long on purpose", name, fd.Name.Name, n)
				}
			}
		}
	}
}

// TestLayout_OneWayToWrite holds node/ to the rule its doc and
// service.apply state: a replicated record is changed only by
// service.apply (merge, then publish), and by the two documented
// exceptions, service.acceptHandoff (a ticket's records, not published
// again) and Node.unrevokeSelf (which must write on a revoked site). Any
// other call of a store's Apply, ApplyChecked or ApplyEncoded, or of a
// Publish or PublishWithDeltas, in node/ fails it.
func TestLayout_OneWayToWrite(t *testing.T) {
	allowed := map[string]bool{ // file:function
		"service.go:apply":         true,
		"service.go:acceptHandoff": true,
		"node.go:unrevokeSelf":     true,
	}
	writes := map[string]bool{"Apply": true, "ApplyChecked": true, "ApplyEncoded": true, "Publish": true, "PublishWithDeltas": true}
	files, err := filepath.Glob(filepath.Join("node", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !writes[sel.Sel.Name] {
					return true
				}
				if !allowed[filepath.Base(name)+":"+fd.Name.Name] {
					t.Errorf("%s: %s calls .%s; replicated records change only through service.apply (node/service.go)",
						fset.Position(call.Pos()), fd.Name.Name, sel.Sel.Name)
				}
				return true
			})
		}
	}
}

// TestArchitecture_Arrows holds the diagram of docs/architecture.md's "The
// arrows" equal to `go list`: it draws every import between the module's
// packages, and no other, and names every package (main for the root).
// The diagram is read as drawn: "a, b ──→ c" is a→c and b→c, "c ←── a" is
// a→c, arrows chain along a line, and a line that starts with a branch
// ("├────→", "└────→") under a name draws from that name.
func TestArchitecture_Arrows(t *testing.T) {
	pkgs := goList(t)
	known := map[string]bool{}
	want := map[[2]string]bool{}
	for _, p := range pkgs {
		known[p.path] = true
		for _, imp := range p.internal {
			want[[2]string{p.path, imp}] = true
		}
	}
	drawn, named := readArrows(t, known)
	for e := range want {
		if !drawn[e] {
			t.Errorf("docs/architecture.md: the arrows lack %s ──→ %s", e[0], e[1])
		}
	}
	for e := range drawn {
		if !want[e] {
			t.Errorf("docs/architecture.md: the arrows draw %s ──→ %s, which go list does not", e[0], e[1])
		}
	}
	for _, p := range pkgs {
		if !named[p.path] {
			t.Errorf("docs/architecture.md: the arrows do not name %s", p.path)
		}
	}
}

// readArrows reads the diagram of "## The arrows": the import edges it
// draws and the packages it names, among known ("main" is ".").
func readArrows(t *testing.T, known map[string]bool) (drawn map[[2]string]bool, named map[string]bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## The arrows\n")
	_, block, ok2 := strings.Cut(section, "```\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`docs/architecture.md has no diagram under "## The arrows"`)
	}
	type span struct {
		from, to int // columns, in runes
		name     string
	}
	drawn, named = map[[2]string]bool{}, map[string]bool{}
	var above [][]span // the names of the lines read so far, by column
	for _, line := range strings.Split(block, "\n") {
		rs := []rune(line)
		for i, depth := 0, 0; i < len(rs); i++ { // comments in parentheses are not drawn
			if rs[i] == '(' {
				depth++
			}
			if depth > 0 {
				if rs[i] == ')' {
					depth--
				}
				rs[i] = ' '
			}
		}
		var spans []span
		var groups [][]string // the names between arrows
		var arrows []rune     // '→' or '←' between groups[i] and groups[i+1]
		group := []string{}
		for i := 0; i < len(rs); {
			r := rs[i]
			switch {
			case r == '├' || r == '└':
				// A branch draws from the name above its column.
				src := ""
				for j := len(above) - 1; j >= 0 && src == ""; j-- {
					for _, s := range above[j] {
						if s.from <= i && i <= s.to {
							src = s.name
						}
					}
				}
				if src == "" {
					t.Fatalf("docs/architecture.md: a branch under no name: %q", line)
				}
				group = []string{src}
				i++
			case r == '─' || r == '→' || r == '←':
				j := i
				for j < len(rs) && (rs[j] == '─' || rs[j] == '→' || rs[j] == '←') {
					j++
				}
				arrow := string(rs[i:j])
				if strings.HasSuffix(arrow, "→") == strings.HasPrefix(arrow, "←") {
					t.Fatalf("docs/architecture.md: an arrow of no one direction %q in %q", arrow, line)
				}
				groups = append(groups, group)
				group = []string{}
				if strings.HasSuffix(arrow, "→") {
					arrows = append(arrows, '→')
				} else {
					arrows = append(arrows, '←')
				}
				i = j
			case nameRune(r):
				j := i
				for j < len(rs) && nameRune(rs[j]) {
					j++
				}
				name := string(rs[i:j])
				if name == "main" {
					name = "."
				}
				if !known[name] {
					t.Fatalf("docs/architecture.md: the arrows name %q, which go list does not", name)
				}
				named[name] = true
				group = append(group, name)
				spans = append(spans, span{i, j - 1, name})
				i = j
			default: // white space, commas, "│"
				i++
			}
		}
		groups = append(groups, group)
		for k, a := range arrows {
			from, to := groups[k], groups[k+1]
			if a == '←' {
				from, to = to, from
			}
			if len(from) == 0 || len(to) == 0 {
				t.Fatalf("docs/architecture.md: an arrow without a package at one end: %q", line)
			}
			for _, f := range from {
				for _, g := range to {
					drawn[[2]string{f, g}] = true
				}
			}
		}
		above = append(above, spans)
	}
	return drawn, named
}

// nameRune reports whether r may stand in a package path as the diagram
// writes it.
func nameRune(r rune) bool {
	return r == '.' || r == '/' || r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// TestLayout_ReadmeTable holds the README's Layout table to `go list`:
// every package has a row, its own or its parent directory's (`main.go`
// stands for the root).
func TestLayout_ReadmeTable(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Layout\n")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(strings.Trim(line, "|"), " | ")[0]
		for _, name := range ticked(cell) {
			if name == "main.go" {
				name = "."
			}
			rows = append(rows, strings.TrimSuffix(name, "/"))
		}
	}
	for _, p := range goList(t) {
		if !slices.ContainsFunc(rows, func(r string) bool { return p.path == r || strings.HasPrefix(p.path, r+"/") }) {
			t.Errorf("README.md: the Layout table has no row for %s", p.path)
		}
	}
}
