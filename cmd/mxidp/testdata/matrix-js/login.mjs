// login.mjs drives the OAuth 2.0 login of the Matrix spec's client-server
// API ("OAuth 2.0 API": server metadata, dynamic client registration, the
// authorization code grant with PKCE, refresh, revocation) with
// matrix-js-sdk, the library Element Web logs in with, for
// TestElementStyleOAuthLoginWithMatrixJSSDK in cmd/mxidp. The Go test plays
// the browser and the homeserver's operator; this script plays the client.
//
//	node login.mjs HOMESERVER_URL REDIRECT_URI
//
// Protocol: JSON lines, in lock-step. Each step prints one line
// {"step":NAME,...} and waits for one line back before it goes on, so that
// the Go test checks the homeserver's state at that point: the answer to
// {"step":"authorize","url":...} is {"code":...,"state":...} (or
// {"error":...}) from REDIRECT_URI, any other answer is an
// acknowledgement. {"step":"done"} ends the run (exit 0); any failure
// prints {"step":"error","error":...} and exits 1.
//
// What Node must supply: nothing beyond Node 20 itself. The SDK's OAuth
// code needs only globalThis.fetch and globalThis.crypto (getRandomValues,
// subtle.digest for the S256 challenge), which Node 20 has; localStorage and
// sessionStorage are not used (the MemoryStore createClient makes works
// without them), so none is faked.

import * as sdk from "matrix-js-sdk";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

const [homeserverUrl, redirectUri] = process.argv.slice(2);

// stderrLogger is the SDK's Logger interface writing to standard error; it
// is handed to every SDK call that takes a logger. The few SDK modules that
// log to the package's root logger write to the console, standard output
// included, so the Go test reads only the lines that start with {"step":.
function stderrLogger(prefix) {
	const write =
		(level) =>
		(...msg) =>
			console.error(`${level} ${prefix}`, ...msg);
	return {
		trace: write("TRACE"),
		debug: write("DEBUG"),
		info: write("INFO"),
		warn: write("WARN"),
		error: write("ERROR"),
		getChild: (ns) => stderrLogger(`${prefix}${ns}`),
	};
}

const logger = stderrLogger("login.mjs ");

function emit(step, fields) {
	process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

// step prints a step and returns the Go test's answer to it.
async function step(name, fields) {
	emit(name, fields);
	return JSON.parse(await readLine());
}

// describe turns what the SDK threw into something the Go test can assert
// on: Matrix errors keep their status and errcode, OAuth 2.0 errors their
// RFC 6749 §5.2 error code.
function describe(err) {
	const out = { error: String(err?.message ?? err) };
	if (err?.httpStatus !== undefined) out.status = err.httpStatus;
	if (err?.errcode !== undefined) out.errcode = err.errcode;
	if (err instanceof sdk.OAuth2HTTPError) out.oauth_error = err.error;
	if (err?.cause !== undefined) out.cause = String(err.cause?.message ?? err.cause);
	return out;
}

// whoami asks the homeserver who an access token belongs to, through a
// MatrixClient made with that token as a client restoring a session does.
async function whoami(accessToken) {
	const client = sdk.createClient({ baseUrl: homeserverUrl, accessToken, logger: logger.getChild("client ") });
	try {
		const me = await client.whoami();
		return { ok: true, user_id: me.user_id, device_id: me.device_id };
	} catch (err) {
		return { ok: false, ...describe(err) };
	} finally {
		client.stopClient();
	}
}

// lines yields standard input line by line; made at start so that nothing
// the Go test writes early is lost.
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function readLine() {
	const { value, done } = await lines.next();
	if (done) {
		throw new Error("standard input closed before the Go test answered");
	}
	return value;
}

async function main() {
	if (!homeserverUrl || !redirectUri) {
		throw new Error("usage: node login.mjs HOMESERVER_URL REDIRECT_URI");
	}

	// Discovery through the homeserver: GET /_matrix/client/v1/auth_metadata
	// (Matrix spec, "Server metadata discovery"); the SDK validates it.
	const discovery = sdk.createClient({ baseUrl: homeserverUrl, logger: logger.getChild("discovery ") });
	const metadata = await discovery.getAuthMetadata();
	discovery.stopClient();
	await step("metadata", { metadata });

	// Dynamic registration (Matrix spec, "Client registration"; RFC 7591) as
	// a native application with a loopback redirect (RFC 8252 §7.3). The SDK
	// fills in grant_types, response_types and token_endpoint_auth_method.
	const clientId = await sdk.OAuth2.registerClient(
		metadata,
		{
			client_name: "matrix-js-sdk test",
			client_uri: "https://client.test/",
			tos_uri: "https://client.test/terms",
			policy_uri: "https://client.test/privacy",
			application_type: "native",
			redirect_uris: [redirectUri],
		},
		logger.getChild("register "),
	);

	// The SDK generates the device ID (10 random alphanumerics, as Element
	// does) and the PKCE verifier; the scope it builds from the device ID is
	// urn:matrix:client:api:* urn:matrix:client:device:<ID>.
	const oauth = new sdk.OAuth2(metadata, { clientId }, logger.getChild("oauth "));
	const deviceId = oauth.context.deviceId;
	const state = randomBytes(12).toString("base64url");
	// A loopback listener sees only the query (RFC 8252 §7.3), not a
	// fragment, so the native client asks for response_mode=query.
	const url = await oauth.generateAuthorizationCodeGrantUrl(state, redirectUri, "query");
	const response = await step("authorize", {
		url,
		client_id: clientId,
		device_id: deviceId,
		state,
		scope: new URL(url).searchParams.get("scope"),
	});

	if (response.error) {
		throw new Error(`authorization failed: ${response.error} ${response.error_description ?? ""}`.trim());
	}
	if (response.state !== state) {
		throw new Error(`authorization response state ${JSON.stringify(response.state)} is not the request's`);
	}

	const tokens = await oauth.completeAuthorizationCodeGrant(response.code, redirectUri);
	if (!tokens.refresh_token) {
		throw new Error("the token response has no refresh token");
	}
	await step("token", tokens);
	const me = await whoami(tokens.access_token);
	await step("whoami", me);
	if (!me.ok) {
		throw new Error(`whoami with the new access token: ${me.error}`);
	}

	const refreshed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
	await step("refresh", refreshed);
	const meAgain = await whoami(refreshed.access_token);
	await step("whoami_refreshed", meAgain);
	if (!meAgain.ok) {
		throw new Error(`whoami with the refreshed access token: ${meAgain.error}`);
	}
	// The refresh token of the first grant is spent (RFC 9700 §4.14.2:
	// rotation); what the first access token does now is reported, not
	// judged: the homeserver may cache its introspection.
	await step("old_access_token", await whoami(tokens.access_token));

	// Logout as Element Web does it with an OAuth session (Element Web
	// src/stores/oidc/OidcClientStore.ts, revokeTokens): revoke the access
	// and the refresh token at the revocation endpoint (RFC 7009), both at
	// once; the homeserver's own /logout is not served under delegated auth.
	const newRefresh = refreshed.refresh_token ?? tokens.refresh_token;
	const revoked = await Promise.allSettled([
		oauth.revokeToken(refreshed.access_token, "access_token"),
		oauth.revokeToken(newRefresh, "refresh_token"),
	]);
	await step("revoke", {
		access_token: revoked[0].status === "fulfilled" ? { ok: true } : { ok: false, ...describe(revoked[0].reason) },
		refresh_token: revoked[1].status === "fulfilled" ? { ok: true } : { ok: false, ...describe(revoked[1].reason) },
	});
	for (const r of revoked) {
		if (r.status === "rejected") {
			throw r.reason;
		}
	}
	// The revocation ends the device in the homeserver on mxidp's side; the
	// Go test answers "revoke" once it has seen the device go, then the
	// tokens are tried.
	await step("whoami_after_logout", await whoami(refreshed.access_token));
	let again = { ok: true };
	try {
		await oauth.performRefreshTokenGrant(newRefresh);
	} catch (err) {
		again = { ok: false, ...describe(err) };
	}
	await step("refresh_after_logout", again);
	emit("done", {});
}

try {
	await main();
	process.exit(0);
} catch (err) {
	emit("error", describe(err));
	process.exit(1);
}
