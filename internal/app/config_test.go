package app

import (
	"testing"

	"postage/internal/config"
	"postage/metering"
)

// The configuration's bound on ingest.future_skew is the meter's.
func TestFutureSkewBoundsAgree(t *testing.T) {
	if got, want := config.MaxFutureSkew, metering.MaxFutureSkew; got != want {
		t.Errorf("config.MaxFutureSkew = %v, metering.MaxFutureSkew = %v", got, want)
	}
}
