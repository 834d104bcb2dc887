-- GET one path with a user's API key. args: <path> <API key>
function init(args)
  wrk.path = args[1]
  wrk.headers["Authorization"] = "Bearer " .. args[2]
end
