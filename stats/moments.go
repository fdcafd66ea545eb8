// Package stats streams per-variable, per-channel summary statistics over a
// Zarr selection: count, mean, standard deviation, min, max and NaN count,
// reading each chunk once, decoding on all cores, in bounded memory.
package stats

import (
	"math"
)

// Moments summarises a stream of values. NaNs are counted apart and take no
// part in the other statistics (numpy's nan* semantics). The zero value is
// an empty summary.
type Moments struct {
	Count int64 // non-NaN values
	NaNs  int64
	Mean  float64
	// M2 is the sum of squared deviations from Mean.
	M2       float64
	Min, Max float64
}

// Std is the population standard deviation (numpy's default ddof=0); NaN
// when there are no values.
func (m Moments) Std() float64 {
	if m.Count == 0 {
		return math.NaN()
	}
	return math.Sqrt(m.M2 / float64(m.Count))
}

// Merge folds o into m with Chan et al.'s parallel update, which stays
// accurate when the two parts have very different means or sizes.
func (m *Moments) Merge(o Moments) {
	m.NaNs += o.NaNs
	if o.Count == 0 {
		return
	}
	if m.Count == 0 {
		nans := m.NaNs
		*m = o
		m.NaNs = nans
		return
	}
	n := m.Count + o.Count
	delta := o.Mean - m.Mean
	fo := float64(o.Count) / float64(n)
	m.Mean += delta * fo
	m.M2 += o.M2 + delta*delta*float64(m.Count)*fo
	m.Count = n
	m.Min = math.Min(m.Min, o.Min)
	m.Max = math.Max(m.Max, o.Max)
}

// number is every element type the accumulators read directly.
type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// blockMoments summarises one block exactly with two passes (a shifted
// sum, then squared deviations from the block mean): blocks are small
// enough to stay in cache, and two passes avoid Welford's per-element
// division while being more accurate. Shifting by the block's first value
// keeps the sum's rounding error proportional to the spread of the data
// rather than to its magnitude (weather data sit far from zero: 280 K).
func blockMoments[T number](vals []T) Moments {
	var m Moments
	shift := math.NaN()
	for _, v := range vals {
		if x := float64(v); x == x {
			shift = x
			break
		}
	}
	if shift != shift {
		m.NaNs = int64(len(vals))
		return m
	}
	var sum float64
	lo, hi := shift, shift
	for _, v := range vals {
		x := float64(v)
		if x != x {
			m.NaNs++
			continue
		}
		sum += x - shift
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	m.Count = int64(len(vals)) - m.NaNs
	m.Mean = shift + sum/float64(m.Count)
	var m2, comp float64
	for _, v := range vals {
		x := float64(v)
		if x != x {
			continue
		}
		d := x - m.Mean
		m2 += d * d
		comp += d
	}
	// comp corrects the rounding error of the mean (the "corrected two-pass"
	// algorithm of Chan, Golub and LeVeque).
	m.M2 = m2 - comp*comp/float64(m.Count)
	m.Min, m.Max = lo, hi
	return m
}
