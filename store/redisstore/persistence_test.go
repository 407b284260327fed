package redisstore_test

import (
	"context"
	"testing"
	"time"

	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

func TestPersistenceReportsServerSettings(t *testing.T) {
	for _, aof := range []bool{false, true} {
		srv := redistest.StartServer(t, redistest.Options{AppendOnly: aof})
		s, err := redisstore.Open("redis://"+srv.Addr, "", time.Now)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Persistence(context.Background())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		// redistest starts servers with `--save ""`, so only the AOF setting makes them durable.
		if p.AOF != aof || p.RDB || p.Durable() != aof {
			t.Errorf("appendonly %v: got %+v", aof, p)
		}
	}
}
