# Container: umoci packs the OCI image; runc runs the unpacked bundle (crun where runc is
# missing; on some VMs crun refuses hybrid cgroup layouts that runc accepts).
need_cmd umoci umoci
need_cmd runc runc
