package api

import (
	"bytes"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/stratus-cloud/stratus/fsm"
)

// Lists that scale (issue 7): a list command walks the index that holds
// the fewest rows it can return, in the order it shows them, filters each
// row without allocating, counts every match for the answer's count and
// keeps (and renders) only the page asked for.

// pager counts the rows a list matches and keeps the page asked for, with
// Paginate's rules: start below 0 is 0, limit -1 is unlimited.
type pager[T any] struct {
	start, limit, total int
	page                []T
}

func newPager[T any](start, limit int) *pager[T] {
	return &pager[T]{start: max(start, 0), limit: limit}
}

// add counts a matching row and keeps it when it falls on the page.
func (p *pager[T]) add(v T) {
	if p.total >= p.start && (p.limit < 0 || p.total < p.start+p.limit) {
		p.page = append(p.page, v)
	}
	p.total++
}

// filled reports whether the page is complete: no row after this one can
// be on it.
func (p *pager[T]) filled() bool {
	return p.limit >= 0 && p.total >= p.start+p.limit
}

// scopeTally returns the number of rows of table that the scope q holds,
// from the table's tally (fsm.Store.Tally), when use is set (the caller
// filters nothing the tally does not) and the table keeps one. The scope's
// accounts are the whole of it: a row's domain is its account's, so the
// domain checks of q.keep hold for every row of those accounts.
func scopeTally(r *Request, q scopeQuery, table string, use bool) (int, bool) {
	if !use || (!q.all && len(q.accounts) == 0) {
		return 0, false
	}
	if q.all {
		return r.State().Tally(table)
	}
	return r.State().Tally(table, q.accounts...)
}

// pageParams reads page and pagesize for a pager.
func pageParams[T any](r *Request) (*pager[T], *Error) {
	start, limit, e := r.Params.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	return newPager[T](start, limit), nil
}

// scopedRows walks the rows of an account-owned table that a scope can
// hold, oldest first (newest first with reverse): through the table's
// "account" index, which orders each account's rows by creation, for the
// accounts in scope, or through its "create" index when every account is.
func scopedRows[T any](r *Request, q scopeQuery, table string, reverse bool) (iter.Seq[*T], error) {
	st := r.State()
	switch {
	case q.all && reverse:
		return fsm.RowsReverse[T](st, nil, table, "create")
	case q.all:
		return fsm.Rows[T](st, nil, table, "create")
	case len(q.accounts) == 1 && reverse:
		return fsm.RowsReverse[T](st, nil, table, "account", q.accounts[0])
	case len(q.accounts) == 1:
		return fsm.Rows[T](st, nil, table, "account", q.accounts[0])
	}
	lookups := make([][]any, 0, len(q.accounts))
	for _, a := range q.accounts {
		lookups = append(lookups, []any{a})
	}
	return fsm.MergeRows[T](st, table, "account", lookups, reverse)
}

// createOrdered returns rows sorted as the "create" index orders them,
// without duplicates: for small candidate sets read from other indexes.
func createOrdered[T any, P interface {
	*T
	fsm.Object
}](rows []P) iter.Seq[*T] {
	slices.SortFunc(rows, func(a, b P) int {
		switch {
		case fsm.CreatedBefore(a, b):
			return -1
		case fsm.CreatedBefore(b, a):
			return 1
		}
		return 0
	})
	rows = slices.CompactFunc(rows, func(a, b P) bool { return a.GetID() == b.GetID() })
	return func(yield func(*T) bool) {
		for _, row := range rows {
			if !yield((*T)(row)) {
				return
			}
		}
	}
}

// keywordMatcher reports whether kw (lower case) is found in the fields
// joined by single spaces, ignoring case, as
// strings.Contains(strings.ToLower(strings.Join(fields, " ")), kw) would:
// without allocating for ASCII text. It reuses one buffer, so it serves
// one request at a time.
type keywordMatcher struct {
	kw  string
	kwb []byte
	buf []byte
	// spaced: kw holds a space, so a match may span two fields.
	spaced bool
}

func newKeywordMatcher(kw string) *keywordMatcher {
	return &keywordMatcher{kw: kw, kwb: []byte(kw), spaced: strings.Contains(kw, " ")}
}

func (m *keywordMatcher) match(fields ...string) bool {
	if !m.spaced {
		// The fields are joined by spaces and kw holds none: a match lies
		// within one field.
		for _, f := range fields {
			if m.in(f) {
				return true
			}
		}
		return false
	}
	return m.joined(fields...)
}

// in reports whether one field holds kw, ignoring case. Names are mostly
// lower case already: those are searched as they are.
func (m *keywordMatcher) in(f string) bool {
	for i := 0; i < len(f); i++ {
		if c := f[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return m.joined(f)
		}
	}
	return strings.Contains(f, m.kw)
}

// joined lowers the fields joined by spaces into the buffer and searches it.
func (m *keywordMatcher) joined(fields ...string) bool {
	m.buf = m.buf[:0]
	ascii := true
	for i, f := range fields {
		if i > 0 {
			m.buf = append(m.buf, ' ')
		}
		for j := 0; j < len(f); j++ {
			c := f[j]
			if c >= utf8.RuneSelf {
				ascii = false
			} else if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			m.buf = append(m.buf, c)
		}
	}
	if !ascii {
		return strings.Contains(strings.ToLower(strings.Join(fields, " ")), m.kw)
	}
	return bytes.Contains(m.buf, m.kwb)
}
