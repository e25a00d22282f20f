package controllers

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// secrets are what a render needs that only the cluster remembers: the
// broker cluster's route credentials, each service's broker user, the
// token-signing keys and the first admin (the service identity has a phase
// of its own, identity.go). Each is generated once, stored in its Secret,
// and read back on every later reconcile, so nothing is rotated by
// accident: a key that exists is kept, and only a missing one is
// generated. The token keys follow spec.auth: a name listed there gets a
// key, a name no longer listed loses its own; a broker user follows its
// service: a disabled service's Secret is pruned.
type secrets struct {
	creds       render.Credentials
	brokerUsers render.BrokerUsers
	// brokerReport says which broker users were made this time.
	brokerReport render.BrokerUsersReport
	tokenKeys    render.TokenKeys
	admin        render.Admin
}

// defaultBrokerUsers keeps the broker users of reconcilers that bring no
// keeper of their own. It remembers checked hashes by a fingerprint of the
// password and hash, so it may be shared.
var defaultBrokerUsers = &render.BrokerUserKeeper{}

func (r *PlatformReconciler) secrets(ctx context.Context, p *v1alpha1.Platform) (secrets, error) {
	var out secrets
	var err error
	if out.creds, err = r.credentials(ctx, p); err != nil {
		return secrets{}, err
	}
	have := render.BrokerUsers{}
	for _, svc := range render.ServiceNames(p) {
		s, err := r.readSecret(ctx, p, render.BrokerUserSecretName(p, svc))
		if err != nil {
			return secrets{}, err
		}
		if s != nil {
			have[svc] = render.BrokerUserFromSecret(s)
		}
	}
	keeper := r.BrokerUsers
	if keeper == nil {
		keeper = defaultBrokerUsers
	}
	if out.brokerUsers, out.brokerReport, err = keeper.Keep(p, have); err != nil {
		return secrets{}, err
	}
	signing, err := r.readSecret(ctx, p, render.TokenSigningSecretName(p))
	if err != nil {
		return secrets{}, err
	}
	if out.tokenKeys, err = render.KeepTokenKeys(p, render.TokenKeysFromSecret(signing)); err != nil {
		return secrets{}, err
	}
	admin, err := r.readSecret(ctx, p, render.AdminSecretName(p))
	if err != nil {
		return secrets{}, err
	}
	if out.admin, err = render.KeepAdmin(render.AdminFromSecret(admin), rand.Reader); err != nil {
		return secrets{}, fmt.Errorf("generating the first admin's password: %w", err)
	}
	return out, nil
}

// credentials returns the broker's credentials (its route and
// administrative user, and its system user) from <p>-auth, generating
// those missing.
func (r *PlatformReconciler) credentials(ctx context.Context, p *v1alpha1.Platform) (render.Credentials, error) {
	secret, err := r.readSecret(ctx, p, render.AuthSecretName(p))
	if err != nil {
		return render.Credentials{}, err
	}
	if creds, ok := render.CredentialsFromSecret(secret); ok {
		return creds, nil
	}
	fresh, err := render.NewCredentials(rand.Reader)
	if err != nil {
		return render.Credentials{}, fmt.Errorf("generating credentials: %w", err)
	}
	if secret == nil {
		return fresh, nil
	}
	// Keep what exists: pods use it. Generate only the keys missing, such
	// as those a newer operator added.
	return fresh.WithCredentialsFrom(secret.Data), nil
}

// readSecret returns p's Secret name, or nil when it does not exist.
func (r *PlatformReconciler) readSecret(ctx context.Context, p *v1alpha1.Platform, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: p.Namespace, Name: name}
	err := r.Get(ctx, key, secret)
	if isNotFound(err) && r.APIReader != nil {
		// The cache only holds labelled objects; a Secret whose labels were
		// edited away still holds the keys every pod uses.
		err = r.APIReader.Get(ctx, key, secret)
	}
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	return secret, nil
}
