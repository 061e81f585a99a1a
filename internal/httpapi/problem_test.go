package httpapi

import (
	"mime"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// A download name taken from the request cannot break the header.
func TestAttachmentName(t *testing.T) {
	for _, name := range []string{"usage-acme.csv", `evil".csv`, "überweisung 2026.pdf"} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		attachment(c, name)
		disp, params, err := mime.ParseMediaType(w.Header().Get("Content-Disposition"))
		if err != nil || disp != "attachment" || params["filename"] != name {
			t.Errorf("%q: got %q %v %v", name, w.Header().Get("Content-Disposition"), params, err)
		}
	}
}
