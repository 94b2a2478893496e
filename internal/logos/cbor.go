package logos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// decodeCBOR decodes one CBOR data item (RFC 8949) from b: maps (keys
// ints or strings), arrays, text and byte strings, integers, simple values
// and floats, definite or indefinite length. It is what Qt writes into a
// plugin's metadata note; tags are read through.
func decodeCBOR(b []byte) (any, []byte, error) {
	d := cborDecoder{b: b}
	v, err := d.item(0)
	if err != nil {
		return nil, nil, err
	}
	return v, d.b, nil
}

type cborDecoder struct {
	b  []byte
	ai byte // additional information of the last head
}

var errCBOR = errors.New("malformed CBOR")

func (d *cborDecoder) byte() (byte, error) {
	if len(d.b) == 0 {
		return 0, errCBOR
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

// head reads an item's major type and argument; indefinite is true for
// additional information 31.
func (d *cborDecoder) head() (major byte, arg uint64, indefinite bool, err error) {
	c, err := d.byte()
	if err != nil {
		return 0, 0, false, err
	}
	major, ai := c>>5, c&0x1f
	d.ai = ai
	switch {
	case ai < 24:
		return major, uint64(ai), false, nil
	case ai == 24, ai == 25, ai == 26, ai == 27:
		n := 1 << (ai - 24)
		if len(d.b) < n {
			return 0, 0, false, errCBOR
		}
		switch n {
		case 1:
			arg = uint64(d.b[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(d.b))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(d.b))
		case 8:
			arg = binary.BigEndian.Uint64(d.b)
		}
		d.b = d.b[n:]
		return major, arg, false, nil
	case ai == 31 && major >= 2 && major <= 5 || ai == 31 && major == 7:
		return major, 0, true, nil
	}
	return 0, 0, false, errCBOR
}

func (d *cborDecoder) item(depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("CBOR nested too deeply")
	}
	major, arg, indef, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0:
		if arg > math.MaxInt64 {
			return nil, errCBOR
		}
		return int64(arg), nil
	case 1:
		if arg > math.MaxInt64 {
			return nil, errCBOR
		}
		return -1 - int64(arg), nil
	case 2, 3:
		var s []byte
		if indef {
			for {
				if len(d.b) > 0 && d.b[0] == 0xff {
					d.b = d.b[1:]
					break
				}
				chunk, err := d.item(depth + 1)
				if err != nil {
					return nil, err
				}
				switch c := chunk.(type) {
				case string:
					s = append(s, c...)
				case []byte:
					s = append(s, c...)
				default:
					return nil, errCBOR
				}
			}
		} else {
			if arg > uint64(len(d.b)) {
				return nil, errCBOR
			}
			s = append([]byte(nil), d.b[:arg]...)
			d.b = d.b[arg:]
		}
		if major == 3 {
			return string(s), nil
		}
		return s, nil
	case 4:
		var out []any
		for i := uint64(0); indef || i < arg; i++ {
			if indef && len(d.b) > 0 && d.b[0] == 0xff {
				d.b = d.b[1:]
				break
			}
			if !indef && i > uint64(len(d.b)) {
				return nil, errCBOR
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case 5:
		out := map[any]any{}
		for i := uint64(0); indef || i < arg; i++ {
			if indef && len(d.b) > 0 && d.b[0] == 0xff {
				d.b = d.b[1:]
				break
			}
			if !indef && i > uint64(len(d.b)) {
				return nil, errCBOR
			}
			k, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case int64, string:
			default:
				return nil, fmt.Errorf("CBOR map key of type %T", k)
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case 6:
		return d.item(depth + 1) // a tag: its content
	case 7:
		switch {
		case indef:
			return nil, errCBOR // a stray break
		case arg == 20:
			return false, nil
		case arg == 21:
			return true, nil
		case arg == 22, arg == 23:
			return nil, nil
		}
		switch d.ai {
		case 25:
			return halfFloat(uint16(arg)), nil
		case 26:
			return float64(math.Float32frombits(uint32(arg))), nil
		case 27:
			return math.Float64frombits(arg), nil
		}
		return nil, nil // other simple values: undefined here
	}
	return nil, errCBOR
}

func halfFloat(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		return -v
	}
	return v
}
