package kit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// clock is a settable time for the throttle and the claim window.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// owners stands for a service's account records.
type owners struct {
	mu     sync.Mutex
	hashes map[string][]byte
}

func (o *owners) exists(_ context.Context, id string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.hashes[id]
	return ok, nil
}

func (o *owners) hashOf(_ context.Context, id string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h, ok := o.hashes[id]; ok {
		return h, nil
	}
	return nil, kit.ErrNotFound
}

func (o *owners) put(id string, h []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hashes[id] = h
}

func newPasswords(t *testing.T, th kit.Throttle) (*kit.Passwords, *clock, *owners) {
	t.Helper()
	bus := kittest.Bus(t, "user")
	emails, _ := kit.NewStore[kit.EmailClaim](bus.Bucket("user-emails"))
	logins, _ := kit.NewStore[kit.LoginFailures](bus.Bucket("user-logins"))
	c := &clock{now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	pw, err := kit.NewPasswords(kit.PasswordsOptions{Emails: emails, Logins: logins, Cost: bcrypt.MinCost, Throttle: th, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return pw, c, &owners{hashes: map[string][]byte{}}
}

// signUp is a service's sign-up: claim, write the record, confirm.
func signUp(ctx context.Context, pw *kit.Passwords, o *owners, email, id, password string) error {
	h, err := pw.Hash(password)
	if err != nil {
		return err
	}
	if err := pw.Claim(ctx, email, id, o.exists); err != nil {
		return err
	}
	o.put(id, h)
	return pw.Confirm(ctx, email, id)
}

func TestPasswordsClaimAndVerify(t *testing.T) {
	pw, clk, o := newPasswords(t, kit.Throttle{})
	ctx := context.Background()
	if err := signUp(ctx, pw, o, "Ada@Example.com", "u1", "correct-horse"); err != nil {
		t.Fatal(err)
	}

	t.Run("a live claim is a 409 on email, whatever the case", func(t *testing.T) {
		e := kit.AsError(pw.Claim(ctx, "ada@example.COM", "u2", o.exists))
		if e.Status != http.StatusConflict || e.Code != kit.CodeEmailTaken || e.Field != "email" {
			t.Errorf("got %+v", e)
		}
	})
	t.Run("a sign-up in flight keeps its claim", func(t *testing.T) {
		if err := pw.Claim(ctx, "grace@example.com", "slow", o.exists); err != nil {
			t.Fatal(err)
		}
		if e := kit.AsError(pw.Claim(ctx, "grace@example.com", "fast", o.exists)); e.Code != kit.CodeEmailTaken {
			t.Errorf("a claim younger than the window was taken over: %+v", e)
		}
	})
	t.Run("a claim left by a crash is taken over after the window", func(t *testing.T) {
		clk.Add(kit.ClaimWindow)
		if err := pw.Claim(ctx, "grace@example.com", "u3", o.exists); err != nil {
			t.Fatalf("stale claim not taken over: %v", err)
		}
		// The stalled sign-up writes its record after all: its
		// confirmation fails, so it knows to undo and answer 409.
		o.put("slow", []byte("x"))
		if e := kit.AsError(pw.Confirm(ctx, "grace@example.com", "slow")); e.Code != kit.CodeEmailTaken {
			t.Errorf("the stalled sign-up confirmed a claim it lost: %+v", e)
		}
		if err := pw.Confirm(ctx, "grace@example.com", "u3"); err != nil {
			t.Errorf("the new owner cannot confirm: %v", err)
		}
		if id, err := pw.Owner(ctx, "grace@example.com"); err != nil || id != "u3" {
			t.Errorf("owner %q, %v; want u3", id, err)
		}
	})
	t.Run("a confirmed claim is never taken over, even without its record", func(t *testing.T) {
		clk.Add(24 * time.Hour)
		if e := kit.AsError(pw.Claim(ctx, "grace@example.com", "u4", o.exists)); e.Code != kit.CodeEmailTaken {
			t.Errorf("got %+v", e)
		}
	})
	if err := pw.Claim(ctx, "ghost@example.com", "ghost", o.exists); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, email, password, wantID string
		wantStatus                    int
	}{
		{"the right password gives the owner", "ADA@example.com", "correct-horse", "u1", 0},
		{"a wrong password is a 401", "ada@example.com", "wrong-horse", "", http.StatusUnauthorized},
		{"an unknown email is the same 401", "nobody@example.com", "correct-horse", "", http.StatusUnauthorized},
		{"a claim without its record is the same 401", "ghost@example.com", "correct-horse", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := pw.Verify(ctx, tc.email, tc.password, o.hashOf)
			if tc.wantStatus == 0 {
				if err != nil || id != tc.wantID {
					t.Errorf("Verify = %q, %v; want %q", id, err, tc.wantID)
				}
				return
			}
			if e := kit.AsError(err); e.Status != tc.wantStatus || e.Code != kit.CodeInvalidCredentials {
				t.Errorf("Verify error %+v, want %d invalid_credentials", e, tc.wantStatus)
			}
		})
	}
}

// Many sign-ups for one email at once, on a real broker, each claiming
// before any has written its record (the widest race): exactly one wins,
// every other gets email_taken, and the email's owner is the winner.
func TestConcurrentSignUpsOneWinner(t *testing.T) {
	pw, _, o := newPasswords(t, kit.Throttle{})
	ctx := context.Background()
	const n = 32
	var (
		claimed sync.WaitGroup // every sign-up has tried its claim
		done    sync.WaitGroup
		start   = make(chan struct{})
		won     atomic.Int32
		winner  atomic.Value
		errs    = make(chan error, n)
	)
	claimed.Add(n)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			<-start
			id := fmt.Sprintf("u%02d", i)
			h, _ := pw.Hash("correct-horse")
			err := pw.Claim(ctx, "race@example.com", id, o.exists)
			claimed.Done()
			if err == nil {
				// The record is written only after every other sign-up
				// has looked at the claim and found no record behind it.
				claimed.Wait()
				o.put(id, h)
				err = pw.Confirm(ctx, "race@example.com", id)
			}
			switch {
			case err == nil:
				won.Add(1)
				winner.Store(id)
			case kit.AsError(err).Code != kit.CodeEmailTaken:
				errs <- err
			}
		}()
	}
	close(start)
	done.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a losing sign-up failed otherwise: %v", err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d sign-ups won, want exactly 1", won.Load())
	}
	if id, err := pw.Owner(ctx, "race@example.com"); err != nil || id != winner.Load() {
		t.Fatalf("owner %q (%v), winner %v", id, err, winner.Load())
	}
}

func TestLoginThrottle(t *testing.T) {
	th := kit.Throttle{Free: 2, Delay: time.Second, LockAfter: 5, LockFor: 10 * time.Minute}
	pw, clk, o := newPasswords(t, th)
	ctx := context.Background()
	if err := signUp(ctx, pw, o, "ada@example.com", "u1", "correct-horse"); err != nil {
		t.Fatal(err)
	}
	login := func(password string) *kit.Error {
		_, err := pw.Verify(ctx, "ada@example.com", password, o.hashOf)
		if err == nil {
			return nil
		}
		return kit.AsError(err)
	}
	expect := func(t *testing.T, e *kit.Error, code string, retry time.Duration) {
		t.Helper()
		switch {
		case code == "" && e != nil:
			t.Fatalf("login refused: %+v", e)
		case code == "":
		case e == nil:
			t.Fatalf("login accepted, want %s", code)
		case e.Code != code || e.RetryAfter != retry:
			t.Fatalf("got %+v, want %s retrying after %s", e, code, retry)
		case code == kit.CodeLoginThrottled && (e.Status != http.StatusTooManyRequests || e.Field != "email"):
			t.Fatalf("a throttled login is %+v, want a 429 on email", e)
		}
	}
	steps := []struct {
		name     string
		advance  time.Duration
		password string
		code     string
		retry    time.Duration
	}{
		{"the first failure is free", 0, "wrong", kit.CodeInvalidCredentials, 0},
		{"the second failure is free", 0, "wrong", kit.CodeInvalidCredentials, 0},
		{"the third failure is looked at", 0, "wrong", kit.CodeInvalidCredentials, 0},
		{"then the next attempt waits a second", 0, "correct-horse", kit.CodeLoginThrottled, time.Second},
		{"half a second later it still waits", 500 * time.Millisecond, "wrong", kit.CodeLoginThrottled, 500 * time.Millisecond},
		{"after the wait a failure is looked at", 500 * time.Millisecond, "wrong", kit.CodeInvalidCredentials, 0},
		{"and the wait doubles", 0, "wrong", kit.CodeLoginThrottled, 2 * time.Second},
		{"the fifth failure in a row", 2 * time.Second, "wrong", kit.CodeInvalidCredentials, 0},
		{"locks the email, even for the right password", 0, "correct-horse", kit.CodeLoginThrottled, 10 * time.Minute},
		{"until the lock ends", 10*time.Minute - time.Second, "correct-horse", kit.CodeLoginThrottled, time.Second},
		{"then the right password gets in", time.Second, "correct-horse", "", 0},
		{"and the count starts over", 0, "wrong", kit.CodeInvalidCredentials, 0},
		{"from zero", 0, "wrong", kit.CodeInvalidCredentials, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Add(s.advance)
			expect(t, login(s.password), s.code, s.retry)
		})
	}
	t.Run("an unknown email is throttled alike, so a 429 reveals nothing", func(t *testing.T) {
		for range th.Free + 1 {
			_, _ = pw.Verify(ctx, "nobody@example.com", "x", o.hashOf)
		}
		_, err := pw.Verify(ctx, "nobody@example.com", "x", o.hashOf)
		expect(t, kit.AsError(err), kit.CodeLoginThrottled, time.Second)
	})
	t.Run("failures are forgotten after the login bucket's TTL", func(t *testing.T) {
		clk.Add(time.Hour)
		expect(t, login("wrong"), kit.CodeInvalidCredentials, 0)
	})
	t.Run("the 429 carries Retry-After in whole seconds", func(t *testing.T) {
		rec := httptest.NewRecorder()
		e := &kit.Error{Status: http.StatusTooManyRequests, Code: kit.CodeLoginThrottled, RetryAfter: 1500 * time.Millisecond}
		kit.WriteError(rec, httptest.NewRequest("POST", "/login", nil), e)
		if got := rec.Header().Get("Retry-After"); got != "2" {
			t.Fatalf("Retry-After %q, want 2", got)
		}
	})
}

// Guesses fired at once on many replicas each take their turn through the
// compare-and-set: no more are looked at than the throttle allows.
func TestConcurrentGuessesAreCounted(t *testing.T) {
	th := kit.Throttle{Free: 3, Delay: time.Second, LockAfter: 10, LockFor: time.Minute}
	pw, _, o := newPasswords(t, th) // the clock stands still
	ctx := context.Background()
	if err := signUp(ctx, pw, o, "ada@example.com", "u1", "correct-horse"); err != nil {
		t.Fatal(err)
	}
	const n = 24
	var looked, throttled atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := pw.Verify(ctx, "ada@example.com", "guess", o.hashOf)
			switch kit.AsError(err).Code {
			case kit.CodeInvalidCredentials:
				looked.Add(1)
			case kit.CodeLoginThrottled:
				throttled.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if looked.Load() != int32(th.Free+1) || throttled.Load() != n-int32(th.Free+1) {
		t.Fatalf("%d guesses looked at and %d throttled, want %d and %d", looked.Load(), throttled.Load(), th.Free+1, n-th.Free-1)
	}
}

func TestNewPasswordsRefusesALockOutlivingItsCounter(t *testing.T) {
	bus := kittest.Bus(t, "user")
	emails, _ := kit.NewStore[kit.EmailClaim](bus.Bucket("user-emails"))
	logins, _ := kit.NewStore[kit.LoginFailures](bus.Bucket("user-logins"))
	points, _ := kit.NewStore[kit.LoginFailures](bus.Bucket("user-points"))
	long := kit.DefaultThrottle
	long.LockFor = 2 * time.Hour
	for _, tc := range []struct {
		name string
		o    kit.PasswordsOptions
	}{
		{"a lock longer than the bucket's TTL", kit.PasswordsOptions{Emails: emails, Logins: logins, Cost: bcrypt.MinCost, Throttle: long}},
		{"a login bucket without a TTL", kit.PasswordsOptions{Emails: emails, Logins: points, Cost: bcrypt.MinCost}},
		{"no login bucket", kit.PasswordsOptions{Emails: emails, Cost: bcrypt.MinCost}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := kit.NewPasswords(tc.o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
