package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// CursorKeySecretName is the secret holding the key that signs log
// cursors. It never starts with the prefix: forged roles may read secrets
// named <prefix>* (the permissions boundary), and must not read this one.
func CursorKeySecretName(prefix string) string { return "control-plane/" + prefix + "log-cursor-key" }

// cursorKeyFunctions serve log pages and follows, so they sign and check cursors.
var cursorKeyFunctions = []string{FnAPI, FnLogs}

// newCursorKey creates the random cursor key at deploy (Secrets Manager
// generates it; nothing derives it from names) and lets the functions
// that sign cursors read it, once per cold start.
func newCursorKey(scope constructs.Construct, cfg Config, fns *Functions) awssecretsmanager.Secret {
	secret := awssecretsmanager.NewSecret(scope, jsii.String("LogCursorKey"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(CursorKeySecretName(cfg.Prefix)),
		Description: jsii.String("ceforge: HMAC key of log cursors (random, generated at deploy)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(64),
			ExcludePunctuation: jsii.Bool(true),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(secret, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SMG4"),
		Reason: jsii.String("The key only signs log cursors (it guards their integrity, not data): rotating it would " +
			"invalidate every cursor clients hold for no gain; replace it by redeploying the secret if it ever leaks."),
	}}, jsii.Bool(false))
	for _, name := range cursorKeyFunctions {
		fns.Fn[name].AddEnvironment(jsii.String("CEFORGE_CURSOR_KEY_SECRET"), secret.SecretArn(), nil)
		fns.Role[name].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadCursorKey"),
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: jsii.Strings(*secret.SecretArn()),
		}))
	}
	return secret
}
