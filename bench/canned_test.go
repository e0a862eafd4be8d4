package bench

import (
	"io"
	"net/http"
	"strings"
)

// payload is the body of every response, canned or served.
var payload = []byte(strings.Repeat("0123456789abcdef", 4)) // 64 bytes

// cannedHeader is shared by every canned response; nothing in the
// workload writes to a response header, and TestCannedHeaderUntouched
// checks that this stays true for every contender.
var cannedHeader = http.Header{
	"Content-Type":   {"text/plain; charset=utf-8"},
	"Content-Length": {"64"},
}

// cannedTransport answers every request with 200 and payload without
// touching the network. It is as cheap as a correct RoundTripper can be:
// one allocation per call, holding the response and its own body reader.
// Every contender runs over the same value in BenchmarkInProcess.
type cannedTransport struct{}

// cannedResponse puts the response and its body in one allocation.
type cannedResponse struct {
	resp http.Response
	body cannedBody
}

// cannedBody reads payload once; each response has its own.
type cannedBody struct {
	off int
}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close() // the RoundTripper contract: always close it
	}
	c := &cannedResponse{}
	c.resp = http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        cannedHeader,
		Body:          &c.body,
		ContentLength: int64(len(payload)),
		Request:       req,
	}
	return &c.resp, nil
}

func (b *cannedBody) Read(p []byte) (int, error) {
	if b.off >= len(payload) {
		return 0, io.EOF
	}
	n := copy(p, payload[b.off:])
	b.off += n
	return n, nil
}

func (b *cannedBody) Close() error { return nil }
