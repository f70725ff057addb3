package serde

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// avroWalker reads one datum by walking the schema and calling hamba's Reader
// primitives, producing JSON-compatible values directly. hamba's own generic
// decoding is not used because it renders unions as {"type": value}, and
// because its limits are per slice and per call frame rather than per payload
// (see avroMaxItems and avroMaxDepth).
type avroWalker struct {
	r     *avro.Reader
	items int // array items and map entries still allowed in this payload
}

func (w *avroWalker) read(s avro.Schema, depth int) (any, error) {
	switch s.Type() {
	case avro.Ref:
		return w.read(s.(*avro.RefSchema).Schema(), depth)
	case avro.Record, avro.Array, avro.Map, avro.Union:
		if depth >= avroMaxDepth {
			return nil, fmt.Errorf("values are nested more than %d deep", avroMaxDepth)
		}
	}
	switch s.Type() {
	case avro.Null:
		return nil, nil
	case avro.Boolean:
		b := w.r.ReadBool()
		return b, w.failed("boolean")
	case avro.Int:
		i := w.r.ReadInt()
		if err := w.failed("int"); err != nil {
			return nil, err
		}
		return avroInt(logicalType(s), i)
	case avro.Long:
		l := w.r.ReadLong()
		if err := w.failed("long"); err != nil {
			return nil, err
		}
		return avroLong(logicalType(s), l)
	case avro.Float:
		f := w.r.ReadFloat()
		return avroFloat(float64(f), 32), w.failed("float")
	case avro.Double:
		f := w.r.ReadDouble()
		return avroFloat(f, 64), w.failed("double")
	case avro.String:
		str := w.r.ReadString()
		if err := w.failed("string"); err != nil {
			return nil, err
		}
		if !utf8.ValidString(str) {
			return nil, errors.New("string is not valid UTF-8")
		}
		return str, nil
	case avro.Bytes:
		b := w.r.ReadBytes()
		if err := w.failed("bytes"); err != nil {
			return nil, err
		}
		return avroBinary(s, b)
	case avro.Fixed:
		return w.readFixed(s.(*avro.FixedSchema))
	case avro.Enum:
		return w.readEnum(s.(*avro.EnumSchema))
	case avro.Record:
		return w.readRecord(s.(*avro.RecordSchema), depth)
	case avro.Array:
		return w.readArray(s.(*avro.ArraySchema), depth)
	case avro.Map:
		return w.readMap(s.(*avro.MapSchema), depth)
	case avro.Union:
		return w.readUnion(s.(*avro.UnionSchema), depth)
	default:
		return nil, fmt.Errorf("schema type %q is not supported", s.Type())
	}
}

// failed turns the Reader's sticky error, if any, into one that says what was
// being read.
func (w *avroWalker) failed(what string) error {
	switch err := w.r.Error; {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("reading %s: the payload ends too early (truncated, or written with another schema)", what)
	case strings.Contains(err.Error(), "MaxByteSliceSize"):
		return fmt.Errorf("reading %s: its length is over the %d-byte limit: %w", what, avroMaxBytes, err)
	default:
		return fmt.Errorf("reading %s: %w", what, err)
	}
}

func (w *avroWalker) readFixed(s *avro.FixedSchema) (any, error) {
	if s.Size() > avroMaxBytes {
		return nil, fmt.Errorf("fixed %s has size %d, more than the %d bytes allowed", s.FullName(), s.Size(), avroMaxBytes)
	}
	b := make([]byte, s.Size())
	w.r.Read(b)
	if err := w.failed("fixed " + s.FullName()); err != nil {
		return nil, err
	}
	if logicalType(s) == avro.Duration && len(b) == 12 {
		return map[string]any{
			"months":       int64(binary.LittleEndian.Uint32(b[0:4])),
			"days":         int64(binary.LittleEndian.Uint32(b[4:8])),
			"milliseconds": int64(binary.LittleEndian.Uint32(b[8:12])),
		}, nil
	}
	return avroBinary(s, b)
}

func (w *avroWalker) readEnum(s *avro.EnumSchema) (any, error) {
	i := w.r.ReadInt()
	if err := w.failed("enum " + s.FullName()); err != nil {
		return nil, err
	}
	sym, ok := s.Symbol(int(i))
	if !ok {
		return nil, fmt.Errorf("enum %s has no symbol %d (it has %d)", s.FullName(), i, len(s.Symbols()))
	}
	return sym, nil
}

func (w *avroWalker) readRecord(s *avro.RecordSchema, depth int) (any, error) {
	m := make(map[string]any, len(s.Fields()))
	for _, f := range s.Fields() {
		v, err := w.read(f.Type(), depth+1)
		if err != nil {
			return nil, atPath(f.Name(), err)
		}
		m[f.Name()] = v
	}
	return m, nil
}

func (w *avroWalker) readArray(s *avro.ArraySchema, depth int) (any, error) {
	arr := []any{}
	for {
		n, err := w.blockCount("array")
		if err != nil {
			return nil, atPath(fmt.Sprintf("[%d]", len(arr)), err)
		}
		if n == 0 {
			return arr, nil
		}
		for range n {
			v, err := w.read(s.Items(), depth+1)
			if err != nil {
				return nil, atPath(fmt.Sprintf("[%d]", len(arr)), err)
			}
			arr = append(arr, v)
		}
	}
}

func (w *avroWalker) readMap(s *avro.MapSchema, depth int) (any, error) {
	m := map[string]any{}
	for {
		n, err := w.blockCount("map")
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return m, nil
		}
		for range n {
			k := w.r.ReadString()
			if err := w.failed("map key"); err != nil {
				return nil, err
			}
			if !utf8.ValidString(k) {
				return nil, errors.New("map key is not valid UTF-8")
			}
			v, err := w.read(s.Values(), depth+1)
			if err != nil {
				return nil, atPath(strconv.Quote(k), err)
			}
			m[k] = v
		}
	}
}

// blockCount reads an array or map block header and charges its count to the
// payload's item budget. Zero ends the array or map.
func (w *avroWalker) blockCount(what string) (int64, error) {
	n, _ := w.r.ReadBlockHeader()
	if err := w.failed(what + " block header"); err != nil {
		return 0, err
	}
	if n < 0 || n > int64(w.items) {
		return 0, fmt.Errorf("%s block claims %d items; a payload may hold at most %d array items and map entries", what, n, avroMaxItems)
	}
	w.items -= int(n)
	return n, nil
}

func (w *avroWalker) readUnion(s *avro.UnionSchema, depth int) (any, error) {
	i := w.r.ReadLong()
	if err := w.failed("union branch"); err != nil {
		return nil, err
	}
	types := s.Types()
	if i < 0 || i >= int64(len(types)) {
		return nil, fmt.Errorf("union has no branch %d (it has %d)", i, len(types))
	}
	return w.read(types[i], depth+1)
}

// avroPathError says where in the datum decoding failed, such as items[3].foo.
type avroPathError struct {
	path string
	err  error
}

func (e *avroPathError) Error() string { return "at " + e.path + ": " + e.err.Error() }
func (e *avroPathError) Unwrap() error { return e.err }

// atPath prefixes the location of err with seg: a field name, "[i]" or a
// quoted map key. A nil err stays nil.
func atPath(seg string, err error) error {
	if err == nil {
		return nil
	}
	var pe *avroPathError
	if !errors.As(err, &pe) {
		return &avroPathError{path: seg, err: err}
	}
	if strings.HasPrefix(pe.path, "[") || strings.HasPrefix(pe.path, `"`) {
		pe.path = seg + pe.path
	} else {
		pe.path = seg + "." + pe.path
	}
	return pe
}

func logicalType(s avro.Schema) avro.LogicalType {
	lts, ok := s.(avro.LogicalTypeSchema)
	if !ok {
		return ""
	}
	ls := lts.Logical()
	if ls == nil {
		return ""
	}
	return ls.Type()
}

const (
	millisPerDay = 24 * 60 * 60 * 1000
	localLayout  = "2006-01-02T15:04:05.999999999"
)

func avroInt(lt avro.LogicalType, i int32) (any, error) {
	switch lt {
	case avro.Date:
		return time.Unix(int64(i)*24*60*60, 0).UTC().Format(time.DateOnly), nil
	case avro.TimeMillis:
		if i < 0 || i >= millisPerDay {
			return nil, fmt.Errorf("time-millis %d is not a time of day", i)
		}
		return time.UnixMilli(int64(i)).UTC().Format("15:04:05.000"), nil
	}
	return int64(i), nil
}

func avroLong(lt avro.LogicalType, l int64) (any, error) {
	switch lt {
	case avro.TimestampMillis:
		return time.UnixMilli(l).UTC().Format(time.RFC3339Nano), nil
	case avro.TimestampMicros:
		return time.UnixMicro(l).UTC().Format(time.RFC3339Nano), nil
	case avro.LocalTimestampMillis:
		return time.UnixMilli(l).UTC().Format(localLayout), nil
	case avro.LocalTimestampMicros:
		return time.UnixMicro(l).UTC().Format(localLayout), nil
	case avro.TimeMicros:
		if l < 0 || l >= millisPerDay*1000 {
			return nil, fmt.Errorf("time-micros %d is not a time of day", l)
		}
		return time.UnixMicro(l).UTC().Format("15:04:05.000000"), nil
	}
	return l, nil
}

// avroFloat returns f as a float64, or, for values JSON cannot hold, the
// string protobuf's JSON mapping uses. bits is 32 for Avro float so that 0.1f
// comes out as 0.1 rather than 0.10000000149011612.
func avroFloat(f float64, bits int) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case bits == 32:
		short, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
		return short
	}
	return f
}

// avroBinary renders bytes or fixed: a decimal as an exact decimal string,
// anything else as standard base64.
func avroBinary(s avro.Schema, b []byte) (any, error) {
	dec, ok := logicalSchema(s).(*avro.DecimalLogicalSchema)
	if !ok {
		return base64.StdEncoding.EncodeToString(b), nil
	}
	// Precision p needs at most p*log2(10)/8+1 < p/2+2 bytes; the bound keeps
	// a hostile length from making big.Int formatting slow.
	if limit := dec.Precision()/2 + 2; len(b) > limit {
		return nil, fmt.Errorf("decimal of %d bytes exceeds precision %d", len(b), dec.Precision())
	}
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 { // two's complement
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(dec.Scale())), nil)
	return new(big.Rat).SetFrac(n, scale).FloatString(dec.Scale()), nil
}

func logicalSchema(s avro.Schema) avro.LogicalSchema {
	if lts, ok := s.(avro.LogicalTypeSchema); ok {
		return lts.Logical()
	}
	return nil
}
