package redisstore_test

import (
	"testing"
	"time"

	"gatehouse/store/conformance"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

func TestConformance(t *testing.T) {
	addr := redistest.Start(t)
	conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
		s, err := redisstore.Open("redis://"+addr, "test:"+t.Name()+":", now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
