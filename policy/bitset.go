package policy

// bitset keeps the first 64 bits inline so that the common case (a policy
// with at most 64 roles and 64 permissions) never allocates.
type bitset struct {
	w0   uint64
	more []uint64 // bits 64.. ; nil when unused
}

func (s *bitset) set(i int) {
	if i < 64 {
		s.w0 |= 1 << uint(i)
		return
	}
	w := i/64 - 1
	for len(s.more) <= w {
		s.more = append(s.more, 0)
	}
	s.more[w] |= 1 << uint(i%64)
}

func (s bitset) has(i int) bool {
	if i < 64 {
		return s.w0&(1<<uint(i)) != 0
	}
	w := i/64 - 1
	return w < len(s.more) && s.more[w]&(1<<uint(i%64)) != 0
}

// or adds t to s. It allocates only when t has bits beyond 64.
func (s *bitset) or(t bitset) {
	s.w0 |= t.w0
	if len(t.more) == 0 {
		return
	}
	if len(s.more) < len(t.more) {
		s.more = append(s.more, make([]uint64, len(t.more)-len(s.more))...)
	}
	for i, w := range t.more {
		s.more[i] |= w
	}
}

func (s bitset) subsetOf(t bitset) bool {
	if s.w0&^t.w0 != 0 {
		return false
	}
	for i, w := range s.more {
		var tw uint64
		if i < len(t.more) {
			tw = t.more[i]
		}
		if w&^tw != 0 {
			return false
		}
	}
	return true
}

func (s bitset) intersects(t bitset) bool {
	if s.w0&t.w0 != 0 {
		return true
	}
	for i := 0; i < len(s.more) && i < len(t.more); i++ {
		if s.more[i]&t.more[i] != 0 {
			return true
		}
	}
	return false
}

// names lists the names of the set bits, in index order.
func (s bitset) names(all []string) []string {
	var out []string
	for i, n := range all {
		if s.has(i) {
			out = append(out, n)
		}
	}
	return out
}
