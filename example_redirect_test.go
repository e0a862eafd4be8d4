package connmgr_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/connmgr/connmgr"
)

// A redirect to another host carries only the origin of the page it came
// from as Referer: the query, with its api_key, is not sent along.
func ExampleCheckRedirect() {
	var referer string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		referer = r.Header.Get("Referer")
		_, _ = io.WriteString(w, "landed")
	}))
	defer other.Close()
	home := httptest.NewServer(http.RedirectHandler(other.URL+"/landing", http.StatusFound))
	defer home.Close()

	m, err := connmgr.New(connmgr.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	// m.Client(), m.Do, m.Get and m.Post already use CheckRedirect; a
	// client of your own sets it.
	client := &http.Client{Transport: m, CheckRedirect: connmgr.CheckRedirect}
	resp, err := client.Get(home.URL + "/start?api_key=SECRET")
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	u, _ := url.Parse(referer)
	fmt.Println("referer is the origin:", referer == home.URL+"/")
	fmt.Printf("query sent along: %q\n", u.RawQuery)
	// Output:
	// referer is the origin: true
	// query sent along: ""
}
