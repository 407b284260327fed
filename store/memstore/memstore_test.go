package memstore_test

import (
	"testing"
	"time"

	"gatehouse/store/conformance"
	"gatehouse/store/memstore"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
		return conformance.ClockDriven(memstore.New(now))
	})
}
