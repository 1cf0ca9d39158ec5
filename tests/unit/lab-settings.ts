import { HaproxySettings } from "../../components";

/** The seed's lab: two api backends, two stream servers, on the Incus bridge's DNS. */
export function labSettings(overrides: Partial<HaproxySettings> = {}): HaproxySettings {
    return {
        apiServers: [
            { name: "backend-api-1", address: "backend-api-1.lxd" },
            { name: "backend-api-2", address: "backend-api-2.lxd" },
        ],
        streamServers: [
            { name: "stream-srv-1", address: "stream-srv-1.lxd" },
            { name: "stream-srv-2", address: "stream-srv-2.lxd" },
        ],
        statsPassword: "lab-password-123",
        cookieSecret: "lab-cookie-secret",
        ...overrides,
    };
}

export function pool(prefix: string, count: number, base = 1): { name: string; address: string }[] {
    return Array.from({ length: count }, (_, i) => ({
        name: `${prefix}-${i + base}`,
        address: `10.0.${Math.floor((i + base) / 250)}.${((i + base) % 250) + 1}`,
    }));
}
