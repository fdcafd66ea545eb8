package sampler

import "math/bits"

// mix is splitmix64's finaliser: a bijective avalanche of x, the building
// block of the counter-based RNG and of the permutation's round function.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// key folds values into one 64-bit key, order-sensitively.
func key(vals ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, v := range vals {
		h = mix(h ^ mix(v+0x9e3779b97f4a7c15))
	}
	return h
}

// hashString keys a split name (FNV-1a).
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// counterRNG draws the random numbers of one sample: its state is a pure
// function of the key it starts from, so samples need no shared RNG.
type counterRNG struct{ key, n uint64 }

func (r *counterRNG) next() uint64 {
	r.n++
	return mix(r.key + r.n*0x9e3779b97f4a7c15)
}

// intn returns a uniform integer in [0, n) (Lemire's method, unbiased).
func (r *counterRNG) intn(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}

// float64 returns a uniform number in [0, 1).
func (r *counterRNG) float64() float64 {
	return float64(r.next()>>11) / (1 << 53)
}

// permutation is a seeded bijection of [0, n): a balanced Feistel network
// over the smallest even power of two ≥ n, cycle-walked back into range, so
// an epoch's order needs no O(n) memory.
type permutation struct {
	n        uint64
	halfBits uint
	mask     uint64
	keys     [4]uint64
}

func newPermutation(n, seed uint64) permutation {
	p := permutation{n: n}
	b := uint(bits.Len64(n - 1))
	if n <= 1 {
		b = 0
	}
	if b%2 == 1 {
		b++
	}
	if b < 2 {
		b = 2
	}
	p.halfBits = b / 2
	p.mask = 1<<p.halfBits - 1
	for i := range p.keys {
		p.keys[i] = key(seed, uint64(i))
	}
	return p
}

// at returns the image of i < n.
func (p *permutation) at(i uint64) uint64 {
	x := i
	for {
		x = p.round(x)
		if x < p.n {
			return x
		}
	}
}

func (p *permutation) round(x uint64) uint64 {
	l, r := x>>p.halfBits, x&p.mask
	for _, k := range p.keys {
		l, r = r, l^(mix(r^k)&p.mask)
	}
	return l<<p.halfBits | r
}
