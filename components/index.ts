// The library's public surface. Stack wiring (reading `haproxy:*` config) is
// not part of it: it lives beside the stack program (../stack-config.ts).

// The component and its inputs.
export { HaproxyLoadBalancer, HaproxyLoadBalancerArgs, HaproxyTlsArgs, HaproxyAcmeTlsArgs, InputError } from "./component";
// The pure core: settings with their defaults, the renderer, the errors it throws.
export {
    BackendServer,
    HaproxySettings,
    ResolvedSettings,
    StreamHashMode,
    CookieSameSite,
    RateLimit,
    DEFAULT_SETTINGS,
    applyDefaults,
} from "./settings";
export { renderHaproxyConfig, openFilesNeeded } from "./render";
export { SettingsError, validateSettings } from "./validate";
// The provisioning steps without the component (constant scripts, inputs on stdin).
export {
    containerStep,
    configStep,
    tlsStep,
    pairConfigStep,
    keepalivedStep,
    acmeStep,
    acmeIssueStep,
    ownerToken,
    stackIdentity,
    ScriptStep,
} from "./scripts";
// Certificates from an ACME CA: tls.acme's input and the renew script's settings.
export { AcmeArgs, LETS_ENCRYPT_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY, renderAcmeEnv } from "./acme";
// The load balancer pair: its input and keepalived.conf.
export { PairArgs, renderKeepalivedConfig, KeepalivedView } from "./pair";
