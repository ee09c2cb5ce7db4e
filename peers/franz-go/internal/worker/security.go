package worker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SecurityOpts are the kgo options for the SASL_SSL settings the benches put in a worker's
// environment (the variables of `Security` in peers/common/worker.rs): TLS trusting the given
// CA, then SASL SCRAM. No variables set means PLAINTEXT (no options); a protocol other than
// SASL_SSL or a missing variable is an error, so a worker never falls back to plaintext unseen.
func SecurityOpts() ([]kgo.Opt, error) {
	protocol := os.Getenv("JOSEFK_WORKER_SECURITY_PROTOCOL")
	if protocol == "" {
		return nil, nil
	}
	if protocol != "SASL_SSL" {
		return nil, fmt.Errorf("JOSEFK_WORKER_SECURITY_PROTOCOL=%s: only SASL_SSL is supported", protocol)
	}
	need := func(name string) (string, error) {
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("%s is not set", name)
		}
		return v, nil
	}
	mechanism, err := need("JOSEFK_WORKER_SASL_MECHANISM")
	if err != nil {
		return nil, err
	}
	user, err := need("JOSEFK_WORKER_SASL_USERNAME")
	if err != nil {
		return nil, err
	}
	password, err := need("JOSEFK_WORKER_SASL_PASSWORD")
	if err != nil {
		return nil, err
	}
	caPath, err := need("JOSEFK_WORKER_SSL_CA_PEM")
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", caPath, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caPath)
	}
	auth := scram.Auth{User: user, Pass: password}
	var mech kgo.Opt
	switch mechanism {
	case "SCRAM-SHA-512":
		mech = kgo.SASL(auth.AsSha512Mechanism())
	case "SCRAM-SHA-256":
		mech = kgo.SASL(auth.AsSha256Mechanism())
	default:
		return nil, fmt.Errorf("unsupported SASL mechanism %s", mechanism)
	}
	// kgo.DialTLSConfig sets ServerName from each broker's host, so host names are checked.
	return []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}), mech}, nil
}
