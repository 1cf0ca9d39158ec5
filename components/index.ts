export { HaproxyLoadBalancer, HaproxyLoadBalancerArgs, HaproxyTlsArgs, InputError, applyComponentDefaults, validateNowOrLater, COMPONENT_DEFAULTS } from "./component";
export { renderHaproxyConfig, configView } from "./render";
export { BackendServer, HaproxySettings, ResolvedSettings, StreamHashMode, DEFAULT_SETTINGS, DEFAULT_TLS_CERT_PATH, CERT_DIR, applyDefaults } from "./settings";
export { SettingsError, validateSettings, validateProvisioning, validateTlsPair, ProvisioningSettings } from "./validate";
export { stableServerIds, cookieValue, sha256Hex } from "./identity";
export { containerStep, configStep, tlsStep, tlsBundle, ownerToken, stepScripts, stepStdin, renderScript, ScriptStep, StepScripts, CONFIG_PATH, MASTER_SOCKET, STEP_HEADER } from "./scripts";
