"""byok-proxy: route platform AI traffic through the customer's own AI accounts."""
