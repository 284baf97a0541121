module netpol-proof/components/critest

go 1.24.1

tool sigs.k8s.io/cri-tools/cmd/critest

require sigs.k8s.io/cri-tools v1.34.0 // indirect
