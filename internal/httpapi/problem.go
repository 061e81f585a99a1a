package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/internal/db"
)

// Problem is an RFC 9457 problem details body. Code is postage's stable
// error code; clients branch on it, never on Title or Detail text.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Errors    any    `json:"errors,omitempty"`
}

// statusOf maps an error code to its HTTP status. This is the one place.
func statusOf(code string) int {
	switch code {
	case postage.EINVALID:
		return http.StatusBadRequest
	case postage.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case postage.EFORBIDDEN:
		return http.StatusForbidden
	case postage.ENOTFOUND:
		return http.StatusNotFound
	case postage.ECONFLICT, postage.EOVERPAYMENT, postage.ECURRENCYMISMATCH, postage.ENOTFINALIZED, postage.EOVERCREDIT, postage.ETAXOVERLAP, postage.EOVERREFUND:
		return http.StatusConflict
	case postage.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case postage.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case postage.EOVERLOADED:
		return http.StatusTooManyRequests
	case postage.EUNAVAILABLE, postage.ENOTOWNER, postage.ERENDERER:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// writeError answers with a problem+json body for err. Internal errors are
// logged with the request id and shown only as "internal error".
//
// This is the one mapping of outages: an error without a code of its own
// whose cause is an unreachable, stalled or restarting database
// (db.IsOutage) answers 503 unavailable with Retry-After, logged as a
// warning; any other uncoded error is a bug: 500, logged as an error.
func (s *Server) writeError(c *gin.Context, err error) {
	err = db.MarkOutage(err, "")
	code := postage.ErrorCode(err)
	status := statusOf(code)
	rid := c.GetString(ctxRequestID)
	switch code {
	case postage.EINTERNAL:
		s.log.Error("request failed", "request_id", rid, "method", c.Request.Method, "path", c.FullPath(), "err", err)
	case postage.EUNAVAILABLE, postage.ENOTOWNER, postage.ERENDERER:
		s.log.Warn("request failed: unavailable", "request_id", rid, "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		c.Header("Retry-After", "1")
	case http.StatusUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="postage"`)
	}
	p := Problem{
		Type:      "https://postage.dev/problems/" + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    postage.ErrorMessage(err),
		Code:      code,
		Instance:  c.Request.URL.Path,
		RequestID: rid,
		Errors:    postage.ErrorDetail(err),
	}
	body, _ := json.Marshal(p)
	c.Data(status, "application/problem+json", body)
	c.Abort()
}

// bindJSON decodes the request body into v, mapping oversize and malformed
// bodies to clear errors. Every string of the body is checked first
// (checkJSONText: UTF-8, no control characters, within its length), so no
// store sees a bad one; unknown fields are rejected so typos are caught.
// Every handler that takes a JSON body decodes it here.
func bindJSON(c *gin.Context, v any) error {
	ct := c.ContentType()
	if ct != "" && ct != "application/json" {
		return postage.Errorf(postage.EUNSUPPORTED, "Content-Type must be application/json, not %s", ct)
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return jsonError(err)
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return postage.Errorf(postage.EINVALID, "malformed JSON: trailing data after the object")
	}
	return nil
}

// jsonError turns a decoding error into a caller-facing *postage.Error.
func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return postage.Errorf(postage.ETOOLARGE, "request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return postage.Errorf(postage.EINVALID, "empty request body")
	case errors.As(err, &se):
		return postage.Errorf(postage.EINVALID, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return postage.Errorf(postage.EINVALID, "field %s: expected %s, got %s", te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return postage.Errorf(postage.EINVALID, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return postage.Errorf(postage.EINVALID, "malformed JSON: %s", err.Error())
}

func logLevelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// attachment marks the answer as a download named name. The header is
// built by mime.FormatMediaType, so a quote or non-ASCII character in a
// name taken from the request cannot break it.
func attachment(c *gin.Context, name string) {
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
}
