package outboxlog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
)

// A frame is a 4-byte little-endian body length, the body's CRC-32C, then
// the body, one record:
//
//	enqueue:    1, first position (8 bytes BE), count (uvarint),
//	            then per message: length (4 bytes LE), encoded message (codec)
//	dispatched: 2, count (uvarint), then the positions (uvarint each)
const (
	frameHeaderSize  = 8
	recordEnqueue    = 1
	recordDispatched = 2
	// enqueueHeaderSize is the frame header, the type and the first
	// position: what number fills in.
	enqueueHeaderSize = frameHeaderSize + 1 + 8
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// errTornFrame marks the end of the valid frames of a segment.
var errTornFrame = errors.New("incomplete or damaged frame")

// nextFrame returns the body of the frame at the start of b and the frame's
// size, or errTornFrame when b does not start with a whole, intact frame.
func nextFrame(b []byte) (body []byte, size int, err error) {
	if len(b) < frameHeaderSize {
		return nil, 0, errTornFrame
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || uint64(n) > uint64(len(b)-frameHeaderSize) {
		return nil, 0, errTornFrame
	}
	body = b[frameHeaderSize : frameHeaderSize+int(n)]
	if crc32.Checksum(body, crc32c) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errTornFrame
	}
	return body, frameHeaderSize + int(n), nil
}

// sealFrame fills in the length and checksum of a frame whose body follows
// its header in frame.
func sealFrame(frame []byte) {
	body := frame[frameHeaderSize:]
	binary.LittleEndian.PutUint32(frame, uint32(len(body)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(body, crc32c))
}

// newEnqueueFrame encodes msgs as an enqueue frame, in a buffer from
// frameBuffers to give back with putFrameBuffer once written. number fills
// in the first position and seals it (setFramePosition, sealFrame):
// positions are given in log order.
func newEnqueueFrame(msgs []engine.Message) *[]byte {
	size := enqueueHeaderSize + binary.MaxVarintLen64
	for i := range msgs {
		size += 4 + codec.SizeHint(&msgs[i])
	}
	buf := getFrameBuffer(size)
	frame := (*buf)[:enqueueHeaderSize]
	frame[frameHeaderSize] = recordEnqueue
	frame = binary.AppendUvarint(frame, uint64(len(msgs)))
	for i := range msgs {
		at := len(frame)
		frame = append(frame, 0, 0, 0, 0)
		frame = codec.AppendMessage(frame, &msgs[i])
		binary.LittleEndian.PutUint32(frame[at:], uint32(len(frame)-at-4))
	}
	*buf = frame
	return buf
}

// setFramePosition puts the first position into an enqueue frame.
func setFramePosition(frame []byte, first uint64) {
	binary.BigEndian.PutUint64(frame[frameHeaderSize+1:], first)
}

// newDispatchedFrame encodes positions as a sealed dispatched frame.
func newDispatchedFrame(positions []uint64) []byte {
	frame := make([]byte, frameHeaderSize+1, frameHeaderSize+1+binary.MaxVarintLen64*(len(positions)+1))
	frame[frameHeaderSize] = recordDispatched
	frame = binary.AppendUvarint(frame, uint64(len(positions)))
	for _, p := range positions {
		frame = binary.AppendUvarint(frame, p)
	}
	sealFrame(frame)
	return frame
}

// frameBuffers holds enqueue frames for reuse once they are written: one
// per Enqueue would otherwise be garbage of every event's size. It holds
// pointers, so that putting one back allocates nothing.
var frameBuffers sync.Pool

// maxPooledFrame bounds the frames kept for reuse, so that one large batch
// does not pin its buffer.
const maxPooledFrame = 64 << 10

// getFrameBuffer returns an empty buffer of at least size bytes' capacity.
func getFrameBuffer(size int) *[]byte {
	p, ok := frameBuffers.Get().(*[]byte)
	if !ok {
		p = new([]byte)
	}
	if cap(*p) < size {
		*p = make([]byte, 0, size)
	}
	*p = (*p)[:0]
	return p
}

// putFrameBuffer gives a written frame back for reuse.
func putFrameBuffer(p *[]byte) {
	if cap(*p) <= maxPooledFrame {
		frameBuffers.Put(p)
	}
}
