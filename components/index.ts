export { HaproxyLoadBalancer, HaproxyLoadBalancerArgs, HaproxyTlsArgs, applyComponentDefaults, COMPONENT_DEFAULTS } from "./component";
export { renderHaproxyConfig, configView } from "./render";
export { BackendServer, HaproxySettings, ResolvedSettings, StreamHashMode, DEFAULT_SETTINGS, applyDefaults } from "./settings";
export { SettingsError, validateSettings, validateProvisioning, validateTlsPair, ProvisioningSettings } from "./validate";
export { stableServerIds, cookieValue, sha256Hex } from "./identity";
export { containerStep, configStep, tlsStep, tlsBundle, renderScript, ScriptStep, CONFIG_PATH, MASTER_SOCKET, DEFAULT_TLS_CERT_PATH } from "./scripts";
export { readStackConfig, labCertificate, IncusHostConfig, STACK_CONFIG_KEYS } from "./stack-config";
