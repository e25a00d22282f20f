package render

import (
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
)

// KeepSecrets returns the Options inputs the operator keeps in Secrets —
// the broker's credentials, the services' broker users, the CA and the
// services' certificates, the token-signing keys and the first admin —
// taken from kept (Secrets by name, as an earlier render or the cluster
// holds them) and generated where missing, as the operator does on each
// reconcile. With no kept Secrets everything is fresh: what `switchboard
// render`, the tests and the chaos run render a Platform with. users keeps
// the broker users (nil: bcrypt's default cost); random draws the new ones.
func KeepSecrets(p *v1alpha1.Platform, kept map[string]*corev1.Secret, users *BrokerUserKeeper, random io.Reader, now time.Time) (Options, error) {
	var o Options
	fresh, err := NewCredentials(random)
	if err != nil {
		return o, err
	}
	o.Credentials = fresh
	if s := kept[AuthSecretName(p)]; s != nil {
		o.Credentials = fresh.WithCredentialsFrom(s.Data)
	}
	have := BrokerUsers{}
	leaves := map[string]*corev1.Secret{}
	for _, svc := range ServiceNames(p) {
		if s, ok := kept[BrokerUserSecretName(p, svc)]; ok {
			have[svc] = BrokerUserFromSecret(s)
		}
		leaves[svc] = kept[TLSSecretName(p, svc)]
	}
	if users == nil {
		users = &BrokerUserKeeper{}
	}
	if o.BrokerUsers, _, err = users.Keep(p, have); err != nil {
		return o, err
	}
	if o.Identity, _, err = KeepIdentity(p, IdentityFromSecrets(kept[CASecretName(p)], leaves), now, random); err != nil {
		return o, err
	}
	if o.TokenKeys, err = KeepTokenKeys(p, TokenKeysFromSecret(kept[TokenSigningSecretName(p)])); err != nil {
		return o, err
	}
	o.Admin, err = KeepAdmin(AdminFromSecret(kept[AdminSecretName(p)]), random)
	return o, err
}
