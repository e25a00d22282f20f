package recommendation_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/recommendation"
	"github.com/switchboard-dev/switchboard/services/streaming/streamtest"
)

func token(t *testing.T, account string) string {
	t.Helper()
	return kittest.Token(t, account)
}

func TestRecommendations(t *testing.T) {
	b := kittest.StartNATS(t, "")
	svc := kittest.Serve(t, recommendation.Definition, b.Env())
	c := streamtest.Client{T: t, Base: svc.URL}
	ev := streamtest.ConnectEvents(t, b)

	library := []events.Video{
		{ID: "v1", Title: "Alps", Genres: []string{"nature"}},
		{ID: "v2", Title: "Reef", Genres: []string{"nature", "ocean"}},
		{ID: "v3", Title: "Heist", Genres: []string{"crime"}},
		{ID: "v4", Title: "Deserts", Genres: []string{"nature"}},
	}
	for _, v := range library {
		id := kit.EventID(catalog.ContentEncoded, v.ID)
		ev.Publish(catalog.ContentEncoded, id, id, time.Now(), v)
	}
	watch := func(account, video string, finished bool) {
		e := events.Playback{SessionID: account + video, AccountID: account, ContentID: video, Finished: finished}
		for _, v := range library {
			if v.ID == video {
				e.Genres = v.Genres
			}
		}
		typ := catalog.PlaybackStarted
		if finished {
			typ = catalog.PlaybackStopped
		}
		id := kit.EventID(typ, e.SessionID)
		ev.Publish(typ, id, id, time.Now(), e)
	}
	// ann watches Alps then Reef; bob watches Alps and finishes Heist.
	watch("ann", "v1", false)
	watch("ann", "v2", false)
	watch("bob", "v1", false)
	watch("bob", "v3", false)
	watch("bob", "v3", true)

	bob := c.As(token(t, "bob"))
	var got recommendation.Answer
	// The library (content.encoded) and the viewing (playback.*) arrive on
	// separate consumers; until Alps' title is in, the reason names its id.
	kittest.Eventually(t, 10*time.Second, "bob's recommendations to lead with Reef, by its title", func() bool {
		bob.Must(http.StatusOK, "GET", "/recommendations?accountId=bob&limit=5", nil, &got)
		return len(got.Items) > 0 && got.Items[0].ContentID == "v2" && got.Items[0].Reason == "watched together with Alps"
	})
	if got.Variant != recommendation.VariantOf("bob") || got.Items[0].Reason != "watched together with Alps" {
		t.Fatalf("bob: %+v", got)
	}
	for _, it := range got.Items {
		if it.ContentID == "v3" || it.ContentID == "v1" {
			t.Fatalf("recommended %s, which bob already watched: %+v", it.ContentID, got.Items)
		}
	}

	// A new account gets the popular titles.
	var fresh recommendation.Answer
	c.As(token(t, "newbie")).Must(http.StatusOK, "GET", "/recommendations", nil, &fresh)
	if len(fresh.Items) == 0 || fresh.Items[0].ContentID != "v1" || fresh.Items[0].Reason != "popular" {
		t.Fatalf("fallback: %+v", fresh)
	}

	var rel recommendation.Answer
	c.Must(http.StatusOK, "GET", "/related/v1", nil, &rel)
	if len(rel.Items) < 3 || !strings.HasPrefix(rel.Items[0].Reason, "watched together") || rel.Items[len(rel.Items)-1].ContentID != "v4" {
		t.Fatalf("related: %+v", rel.Items)
	}
	c.Must(http.StatusNotFound, "GET", "/related/nope", nil, nil)

	var st recommendation.VariantStats
	bob.Must(http.StatusOK, "POST", "/clicks", recommendation.Click{AccountID: "bob", ContentID: "v2"}, &st)
	if st.Variant != got.Variant || st.Clicks != 1 || st.Impressions < 1 {
		t.Fatalf("click stats %+v", st)
	}
	// A click without an account is the caller's.
	bob.Must(http.StatusOK, "POST", "/clicks", recommendation.Click{ContentID: "v2"}, &st)
	if st.Clicks != 2 {
		t.Fatalf("click stats %+v", st)
	}
	// Another account is answered as one that does not exist.
	for _, refused := range []struct{ method, path string }{{"POST", "/clicks"}, {"GET", "/recommendations?accountId=ann"}} {
		var body any
		if refused.method == "POST" {
			body = recommendation.Click{AccountID: "ann", ContentID: "v2"}
		}
		raw := bob.Must(http.StatusNotFound, refused.method, refused.path, body, nil)
		if e := streamtest.Err(t, raw).Error; e.Code != kit.CodeNotFound || e.Field != "accountId" {
			t.Fatalf("%s %s for another account: %s", refused.method, refused.path, raw)
		}
	}
	c.Must(http.StatusUnauthorized, "GET", "/recommendations", nil, nil)
	c.Must(http.StatusUnauthorized, "POST", "/clicks", recommendation.Click{ContentID: "v2"}, nil)
	raw := bob.Must(http.StatusBadRequest, "GET", "/recommendations?limit=500", nil, nil)
	if streamtest.Err(t, raw).Error.Field != "limit" {
		t.Fatalf("limit: %s", raw)
	}
	// A/B results are for staff.
	c.Must(http.StatusUnauthorized, "GET", "/experiments", nil, nil)
	bob.Must(http.StatusForbidden, "GET", "/experiments", nil, nil)
	var ex struct{ Items []recommendation.VariantStats }
	c.As(kittest.StaffToken(t, "staff1")).Must(http.StatusOK, "GET", "/experiments", nil, &ex)
	if len(ex.Items) != 2 {
		t.Fatalf("experiments %+v", ex)
	}
}

func TestVariantsSplitAccounts(t *testing.T) {
	n := map[string]int{}
	for i := range 1000 {
		n[recommendation.VariantOf(kit.NewID()+string(rune('a'+i%26)))]++
	}
	if n[recommendation.Control] < 400 || n[recommendation.Treatment] < 400 {
		t.Fatalf("split %v", n)
	}
	if recommendation.VariantOf("acct") != recommendation.VariantOf("acct") {
		t.Fatal("variant is not stable")
	}
}

func FuzzClickDecode(f *testing.F) {
	f.Add([]byte(`{"accountId":"a","contentId":"v"}`))
	f.Add([]byte(`{"accountId":"a/b"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c recommendation.Click
		if err := kit.DecodeJSON(bytes.NewReader(body), &c); err != nil {
			if s := kit.AsError(err).Status; s != 400 && s != 413 {
				t.Fatalf("decode error %v: %d", err, s)
			}
			return
		}
		if err := c.Validate(); err != nil {
			if e := kit.AsError(err); e.Status != 400 || e.Field == "" {
				t.Fatalf("validation %v", err)
			}
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	f.Add("10")
	f.Add("0x10")
	f.Add("-1")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := recommendation.ParseLimit(s)
		if err == nil && (n < 1 || n > 50) {
			t.Fatalf("accepted %q as %d", s, n)
		}
	})
}
