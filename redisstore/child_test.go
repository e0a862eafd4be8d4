package redisstore

func runChild() bool { return false }
