package nfs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file reads the role's NFS-Ganesha configuration (ganesha.conf(5): blocks "NAME { ... }", parameters
// "Key = value, value;", "#" comments, quoted strings, top-level %include lines) far enough to find the
// export and its CLIENT blocks, and derives the site's copy of the export from it, so that the role's file
// stays the only definition of the export.

// confParam is one "Key = value;" of a block.
type confParam struct {
	Key   string
	Value string // raw value text, trimmed, without the ';'
	// Start and End are the byte offsets of the parameter in the text (End after its ';').
	Start, End int
}

// confBlock is one "NAME { ... }" block.
type confBlock struct {
	Name string
	// Start is the offset of the name, End the offset just after the closing '}'.
	Start, End int
	Params     []confParam
	Children   []confBlock
}

// param returns the raw value of the block's parameter key (case-insensitive, as Ganesha reads keys), "" when
// it has none.
func (b confBlock) param(key string) string {
	for _, p := range b.Params {
		if strings.EqualFold(p.Key, key) {
			return p.Value
		}
	}
	return ""
}

type confToken struct {
	text       string
	start, end int
	quoted     bool
}

// tokenize splits a Ganesha configuration into tokens: words, quoted strings and the punctuation { } = ; ,.
// Comments and %include/%dir/%url lines (only allowed at the top level) are skipped.
func tokenize(s string) ([]confToken, error) {
	var toks []confToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '%':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.IndexByte("{}=;,", c) >= 0:
			toks = append(toks, confToken{text: string(c), start: i, end: i + 1})
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if c == '"' && s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated quoted string at offset %d", i)
			}
			toks = append(toks, confToken{text: s[i+1 : j], start: i, end: j + 1, quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\r\n{}=;,#\"'", s[j]) < 0 {
				j++
			}
			toks = append(toks, confToken{text: s[i:j], start: i, end: j})
			i = j
		}
	}
	return toks, nil
}

// parseGanesha parses the top-level blocks of a Ganesha configuration.
func parseGanesha(s string) ([]confBlock, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &confParser{s: s, toks: toks}
	top, err := p.items(false)
	if err != nil {
		return nil, err
	}
	return top.Children, nil
}

type confParser struct {
	s    string
	toks []confToken
	i    int
}

// items parses parameters and blocks until the end of the text or, in a block, its closing '}'.
func (p *confParser) items(inBlock bool) (confBlock, error) {
	var b confBlock
	for {
		if p.i >= len(p.toks) {
			if inBlock {
				return b, errors.New("a block is not closed (missing '}')")
			}
			return b, nil
		}
		t := p.toks[p.i]
		if t.text == "}" && !t.quoted {
			if !inBlock {
				return b, fmt.Errorf("unexpected '}' at offset %d", t.start)
			}
			return b, nil
		}
		if p.i+1 >= len(p.toks) {
			return b, fmt.Errorf("unexpected end after %q", t.text)
		}
		switch next := p.toks[p.i+1]; next.text {
		case "{":
			p.i += 2
			child, err := p.items(true)
			if err != nil {
				return b, fmt.Errorf("in block %s: %w", t.text, err)
			}
			child.Name, child.Start, child.End = t.text, t.start, p.toks[p.i].end
			p.i++ // '}'
			b.Children = append(b.Children, child)
		case "=":
			p.i += 2
			vStart := -1
			vEnd := next.end
			end := next.end
			for p.i < len(p.toks) {
				v := p.toks[p.i]
				if !v.quoted && v.text == ";" {
					end = v.end
					p.i++
					break
				}
				if !v.quoted && v.text == "}" { // a last parameter without ';'
					break
				}
				if vStart < 0 {
					vStart = v.start
				}
				vEnd, end = v.end, v.end
				p.i++
			}
			val := ""
			if vStart >= 0 {
				val = strings.TrimSpace(p.s[vStart:vEnd])
			}
			b.Params = append(b.Params, confParam{Key: t.text, Value: val, Start: t.start, End: end})
		default:
			return b, fmt.Errorf("unexpected %q after %q at offset %d", next.text, t.text, next.start)
		}
	}
}

// exportBlock is the role's export as found in its ganesha.conf.
type exportBlock struct {
	block confBlock
	ID    int
	Path  string
	// RWClients are the entries of the CLIENT blocks with Access_Type = RW, in order.
	RWClients []string
	// rw are the indexes of those CLIENT blocks among block.Children.
	rw []int
}

// findExport finds the EXPORT block whose Pseudo is pseudo.
func findExport(conf, pseudo string) (exportBlock, error) {
	blocks, err := parseGanesha(conf)
	if err != nil {
		return exportBlock{}, fmt.Errorf("cannot parse the role's %s: %w", RoleConfPath, err)
	}
	var pseudos []string
	for _, b := range blocks {
		if !strings.EqualFold(b.Name, "EXPORT") {
			continue
		}
		ps := b.param("Pseudo")
		pseudos = append(pseudos, unquote(ps))
		if unquote(ps) != pseudo {
			continue
		}
		e := exportBlock{block: b}
		idText := b.param("Export_Id")
		if e.ID, err = strconv.Atoi(idText); err != nil || e.ID <= 0 || e.ID > 65535 {
			return exportBlock{}, fmt.Errorf("the export %s in the role's %s has no valid Export_Id (%q)", pseudo, RoleConfPath, idText)
		}
		path := b.param("Path")
		e.Path = unquote(path)
		for i, c := range b.Children {
			if !strings.EqualFold(c.Name, "CLIENT") {
				continue
			}
			if at := c.param("Access_Type"); !strings.EqualFold(unquote(at), "RW") {
				continue
			}
			e.rw = append(e.rw, i)
			cl := c.param("Clients")
			if cl == "" {
				return exportBlock{}, fmt.Errorf("a read-write CLIENT block of the export %s in the role's %s has no Clients", pseudo, RoleConfPath)
			}
			for _, x := range strings.Split(cl, ",") {
				if x = unquote(strings.TrimSpace(x)); x != "" {
					e.RWClients = append(e.RWClients, x)
				}
			}
		}
		if len(e.rw) == 0 {
			return exportBlock{}, fmt.Errorf("the export %s in the role's %s has no CLIENT block with Access_Type = RW: nothing to restrict (has the role changed?)", pseudo, RoleConfPath)
		}
		return e, nil
	}
	return exportBlock{}, fmt.Errorf("the role's %s has no EXPORT with Pseudo = %s (exports: %s)", RoleConfPath, pseudo, strings.Join(pseudos, ", "))
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// siteExportText derives the site's export from the role's configuration: the role's EXPORT block as it is,
// except that its first read-write CLIENT block lists clients (its other settings kept) and its other
// read-write CLIENT blocks are dropped. Every other line (the read-only loopback client, squash, FSAL...)
// stays the role's.
func siteExportText(conf string, e exportBlock, clients []string) string {
	b := e.block
	first := b.Children[e.rw[0]]
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	list := strings.Join(clients, ", ")
	for _, p := range first.Params { // findExport made sure it has Clients
		if strings.EqualFold(p.Key, "Clients") {
			edits = append(edits, edit{p.Start, p.End, "Clients = " + list + ";"})
		}
	}
	for _, i := range e.rw[1:] {
		c := b.Children[i]
		start, end := c.Start, c.End
		// Take the whole lines when the block stands on its own lines.
		if ls := strings.LastIndexByte(conf[:start], '\n') + 1; strings.TrimSpace(conf[ls:start]) == "" {
			start = ls
			if nl := strings.IndexByte(conf[end:], '\n'); nl >= 0 && strings.TrimSpace(conf[end:end+nl]) == "" {
				end += nl + 1
			}
		}
		edits = append(edits, edit{start, end, ""})
	}
	slices.SortFunc(edits, func(x, y edit) int { return x.start - y.start })
	var out strings.Builder
	pos := b.Start
	for _, ed := range edits {
		out.WriteString(conf[pos:ed.start])
		out.WriteString(ed.text)
		pos = ed.end
	}
	out.WriteString(conf[pos:b.End])
	return out.String()
}

// normalizeClient returns a client address or network as Ganesha prints it back (D-Bus, MOUNT's export
// list): a masked prefix, "/32" or "/128" for a single address.
func normalizeClient(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR network", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR network", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// normalizeClients normalizes, sorts and de-duplicates clients.
func normalizeClients(clients []string) ([]string, error) {
	var out []string
	var errs []error
	for _, c := range clients {
		p, err := normalizeClient(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Addr().IsUnspecified() && p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("%q would allow every host: list the web nodes' addresses", c))
			continue
		}
		out = append(out, p.String())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
