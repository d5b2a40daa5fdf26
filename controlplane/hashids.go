package controlplane

import (
	"errors"
	"strings"
)

// hashids implements the public Hashids algorithm (hashids.js 2.x, the
// version Taskcluster's lib-api uses for continuation tokens): reversible
// obfuscation of non-negative integers with a salt, a minimum length, the
// default alphabet and the default separators. Only what the API needs is
// implemented: encoding and decoding of small non-negative integers.
type hashids struct {
	salt      string
	minLength int
	alphabet  string
	seps      string
	guards    string
	allowed   [256]bool
}

const (
	hashidsAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890"
	hashidsSeps     = "cfhistuCFHISTU"
	hashidsSepDiv   = 3.5
	hashidsGuardDiv = 12
)

// errHashidsAlphabet is returned when a token has a character that no
// Hashids token can contain.
var errHashidsAlphabet = errors.New("hashids: character outside the alphabet")

func newHashids(salt string, minLength int) *hashids {
	h := &hashids{salt: salt, minLength: minLength}
	var alphabet, seps []byte
	for i := 0; i < len(hashidsAlphabet); i++ {
		c := hashidsAlphabet[i]
		if strings.IndexByte(hashidsSeps, c) >= 0 {
			continue
		}
		alphabet = append(alphabet, c)
	}
	for i := 0; i < len(hashidsSeps); i++ {
		if strings.IndexByte(hashidsAlphabet, hashidsSeps[i]) >= 0 {
			seps = append(seps, hashidsSeps[i])
		}
	}
	shuffle(seps, salt)
	if len(seps) == 0 || float64(len(alphabet))/float64(len(seps)) > hashidsSepDiv {
		sepsLength := ceilDiv(float64(len(alphabet)), hashidsSepDiv)
		if sepsLength == 1 {
			sepsLength = 2
		}
		if sepsLength > len(seps) {
			diff := sepsLength - len(seps)
			seps = append(seps, alphabet[:diff]...)
			alphabet = alphabet[diff:]
		} else {
			seps = seps[:sepsLength]
		}
	}
	shuffle(alphabet, salt)
	guardCount := ceilDiv(float64(len(alphabet)), hashidsGuardDiv)
	var guards []byte
	if len(alphabet) < 3 {
		guards = append(guards, seps[:guardCount]...)
		seps = seps[guardCount:]
	} else {
		guards = append(guards, alphabet[:guardCount]...)
		alphabet = alphabet[guardCount:]
	}
	h.alphabet, h.seps, h.guards = string(alphabet), string(seps), string(guards)
	for _, set := range []string{h.alphabet, h.seps, h.guards} {
		for i := 0; i < len(set); i++ {
			h.allowed[set[i]] = true
		}
	}
	return h
}

func ceilDiv(a, b float64) int {
	q := a / b
	n := int(q)
	if float64(n) < q {
		n++
	}
	return n
}

// shuffle is Hashids' consistent shuffle of alphabet keyed by salt.
func shuffle(alphabet []byte, salt string) {
	if salt == "" {
		return
	}
	for i, v, p := len(alphabet)-1, 0, 0; i > 0; i, v = i-1, v+1 {
		v %= len(salt)
		n := int(salt[v])
		p += n
		j := (n + v + p) % i
		alphabet[i], alphabet[j] = alphabet[j], alphabet[i]
	}
}

func toAlphabet(n uint64, alphabet []byte) []byte {
	var out []byte
	base := uint64(len(alphabet))
	for {
		out = append([]byte{alphabet[n%base]}, out...)
		n /= base
		if n == 0 {
			return out
		}
	}
}

func fromAlphabet(s string, alphabet []byte) (uint64, bool) {
	var n uint64
	for i := 0; i < len(s); i++ {
		k := strings.IndexByte(string(alphabet), s[i])
		if k < 0 {
			return 0, false
		}
		next := n*uint64(len(alphabet)) + uint64(k)
		if next/uint64(len(alphabet)) != n { // overflow: not a token we made
			return 0, false
		}
		n = next
	}
	return n, true
}

// Encode returns the token for numbers.
func (h *hashids) Encode(numbers ...uint64) string {
	if len(numbers) == 0 {
		return ""
	}
	alphabet := []byte(h.alphabet)
	var idHash uint64
	for i, n := range numbers {
		idHash += n % uint64(i+100)
	}
	lottery := alphabet[idHash%uint64(len(alphabet))]
	ret := []byte{lottery}
	for i, n := range numbers {
		buffer := string(lottery) + h.salt + string(alphabet)
		shuffle(alphabet, buffer[:len(alphabet)])
		last := toAlphabet(n, alphabet)
		ret = append(ret, last...)
		if i+1 < len(numbers) {
			n %= uint64(last[0]) + uint64(i)
			ret = append(ret, h.seps[n%uint64(len(h.seps))])
		}
	}
	if len(ret) < h.minLength {
		g := h.guards[(idHash+uint64(ret[0]))%uint64(len(h.guards))]
		ret = append([]byte{g}, ret...)
		if len(ret) < h.minLength {
			g = h.guards[(idHash+uint64(ret[2]))%uint64(len(h.guards))]
			ret = append(ret, g)
		}
	}
	half := len(alphabet) / 2
	for len(ret) < h.minLength {
		shuffle(alphabet, string(alphabet))
		next := make([]byte, 0, len(ret)+len(alphabet))
		next = append(next, alphabet[half:]...)
		next = append(next, ret...)
		next = append(next, alphabet[:half]...)
		ret = next
		if excess := len(ret) - h.minLength; excess > 0 {
			start := excess / 2
			ret = ret[start : start+h.minLength]
		}
	}
	return string(ret)
}

// Decode returns the numbers of token; an empty result (not an error)
// means the token is made of valid characters but is not one we issued.
func (h *hashids) Decode(token string) ([]uint64, error) {
	for i := 0; i < len(token); i++ {
		if !h.allowed[token[i]] {
			return nil, errHashidsAlphabet
		}
	}
	parts := splitAny(token, h.guards)
	i := 0
	if len(parts) == 2 || len(parts) == 3 {
		i = 1
	}
	body := parts[i]
	if body == "" {
		return nil, nil
	}
	lottery := body[0]
	alphabet := []byte(h.alphabet)
	var out []uint64
	for _, sub := range splitAny(body[1:], h.seps) {
		buffer := string(lottery) + h.salt + string(alphabet)
		shuffle(alphabet, buffer[:len(alphabet)])
		n, ok := fromAlphabet(sub, alphabet)
		if !ok {
			return nil, nil
		}
		out = append(out, n)
	}
	if len(out) == 0 || h.Encode(out...) != token {
		return nil, nil
	}
	return out, nil
}

// splitAny splits s at every byte that is in seps.
func splitAny(s, seps string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(seps, s[i]) >= 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
