package smvault

import "encoding/json"

// jsonBody encodes a request ([]byte fields become base64, as the AWS JSON
// protocol sends blobs).
func jsonBody(in any) ([]byte, error) { return json.Marshal(in) }
