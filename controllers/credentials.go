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

// credentials returns the platform's broker credentials and token-signing
// key. They are generated once, stored in the <p>-auth Secret, and read
// back on every later reconcile, so they are never rotated by accident: a
// key that exists is kept, and only a missing key is generated.
func (r *PlatformReconciler) credentials(ctx context.Context, p *v1alpha1.Platform) (render.Credentials, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: p.Namespace, Name: render.AuthSecretName(p)}
	err := r.Get(ctx, key, secret)
	if isNotFound(err) && r.APIReader != nil {
		// The cache only holds labelled objects; a Secret whose labels were
		// edited away still holds the keys every pod uses.
		err = r.APIReader.Get(ctx, key, secret)
	}
	if err != nil && !isNotFound(err) {
		return render.Credentials{}, fmt.Errorf("reading Secret %s: %w", key.Name, err)
	}
	if creds, ok := render.CredentialsFromSecret(secret); ok {
		return creds, nil
	}

	fresh, err := render.NewCredentials(rand.Reader)
	if err != nil {
		return render.Credentials{}, fmt.Errorf("generating credentials: %w", err)
	}
	keep := func(k, generated string) string {
		if v := secret.Data[k]; len(v) > 0 {
			return string(v)
		}
		return generated
	}
	return render.Credentials{
		NATSUser:     keep(render.SecretKeyNATSUser, fresh.NATSUser),
		NATSPassword: keep(render.SecretKeyNATSPassword, fresh.NATSPassword),
		AuthKey:      keep(render.SecretKeyAuthKey, fresh.AuthKey),
	}, nil
}
