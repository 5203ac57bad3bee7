package policy

import (
	"errors"
	"fmt"
	"math/bits"
)

// maxGlobStates bounds a glob's compiled length (one state per literal byte or star), so the
// matcher's state set fits in a fixed array and matching never allocates.
const maxGlobStates = 256

// glob is a compiled glob: "*" matches any run of bytes except sep, "**" any run at all, every
// other byte itself. It is matched by simulating the NFA over a fixed-size bitset, so a match costs
// O(len(s) × active states) with no backtracking: a pattern like "*a*a*a*b" cannot be made to
// take exponential time by a crafted path.
type glob struct {
	src  string
	ops  []globOp
	sep  int  // the byte "*" does not cross, or -1 when "*" and "**" are the same
	lit  bool // no stars: matching is a plain comparison
	star bool // some op is a star (a state with an empty transition)
	fold bool // ASCII letters match in either case (foldCase)
}

// foldCase makes g match ASCII letters in either case: a rule with key.case_insensitive_path
// keys "/API/x" and "/api/x" alike, so it must match them alike (or another rule could fill the
// entry it shares).
func (g *glob) foldCase() {
	g.fold = true
	for i := range g.ops {
		g.ops[i].c = lower(g.ops[i].c)
	}
}

// globOp is one state of a glob: a literal byte to consume, or a star that loops on itself.
type globOp struct {
	c    byte
	kind uint8 // opLit, opStar or opAny
}

const (
	opLit  uint8 = iota
	opStar       // * : any byte but sep, any number of times
	opAny        // **: any byte, any number of times
)

var errGlobTooLong = fmt.Errorf("glob too long (more than %d characters)", maxGlobStates-1)

// compileGlob compiles pattern; sep is the byte "*" stops at, or -1.
func compileGlob(pattern string, sep int) (*glob, error) {
	g := &glob{src: pattern, sep: sep, lit: true}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '*' {
			g.ops = append(g.ops, globOp{c: c})
			continue
		}
		g.lit, g.star = false, true
		kind := opStar
		for i+1 < len(pattern) && pattern[i+1] == '*' { // "**", "***", …: all mean "anything"
			kind = opAny
			i++
		}
		if sep < 0 {
			kind = opAny
		}
		// Adjacent stars collapse: "*" followed by "**" is just "**".
		if n := len(g.ops); n > 0 && g.ops[n-1].kind != opLit {
			g.ops[n-1].kind = max(g.ops[n-1].kind, kind)
			continue
		}
		g.ops = append(g.ops, globOp{kind: kind})
	}
	if len(g.ops) >= maxGlobStates {
		return nil, errGlobTooLong
	}
	if len(pattern) == 0 {
		return nil, errors.New("empty glob")
	}
	return g, nil
}

// stateSet is a set of glob states; state len(ops) is "matched".
type stateSet [maxGlobStates / 64]uint64

func (s *stateSet) add(i int)      { s[i>>6] |= 1 << (i & 63) }
func (s *stateSet) has(i int) bool { return s[i>>6]&(1<<(i&63)) != 0 }

// closure adds, for every star state in s, the state after it (a star may match nothing).
// Ascending order handles runs of stars in one pass.
func (g *glob) closure(s *stateSet) {
	for i, op := range g.ops {
		if op.kind != opLit && s.has(i) {
			s.add(i + 1)
		}
	}
}

// match reports whether the whole of s matches g.
func (g *glob) match(s []byte) bool {
	if g.lit && !g.fold {
		return len(s) == len(g.ops) && string(s) == g.src
	}
	if g.lit {
		return len(s) == len(g.ops) && hasPrefixFold(s, g.src)
	}
	var cur stateSet
	cur.add(0)
	g.closure(&cur)
	n := len(g.ops)
	for _, c := range s {
		if g.fold {
			c = lower(c)
		}
		var next stateSet
		any := false
		for w, set := range cur {
			for set != 0 {
				i := w<<6 + bits.TrailingZeros64(set)
				set &= set - 1
				if i >= n {
					continue
				}
				switch op := g.ops[i]; op.kind {
				case opLit:
					if op.c == c {
						next.add(i + 1)
						any = true
					}
				case opStar:
					if int(c) != g.sep {
						next.add(i)
						any = true
					}
				case opAny:
					next.add(i)
					any = true
				}
			}
		}
		if !any {
			return false
		}
		g.closure(&next)
		cur = next
	}
	return cur.has(n)
}
