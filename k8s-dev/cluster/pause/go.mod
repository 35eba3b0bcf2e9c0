module users-service/cluster/pause

go 1.22
