/*
 * The lab (lab/: Incus containers, the backends, the component's steps run as
 * scripts, a load balancer observed from outside) as the e2e and engine tests
 * use it: through the kit, like the rest of tests/support.
 */
export * from "../../lab/lab";
export * from "../../lab/lb";
export * from "../../lab/pair-lab";
export * from "../../lab/product";
