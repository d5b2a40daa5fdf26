package notes

import _ "embed"

// Routes is routes.yaml, the example's route policy, embedded so that
// `tcauth dev` can run the example behind a sidecar without files.
//
//go:embed routes.yaml
var Routes []byte
